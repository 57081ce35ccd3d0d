//! What an administrator asks of a running server (`rwxfs export`): make, list, resize and
//! delete exports. Runs on the blocking pool; each engine call holds the engine alone, and
//! every change is committed before the answer.

use protocol::{AccessMode, ExportCmd, ExportInfo, ServerMsg, VolumeSpace};
use volume::layout::BLOCK_SIZE;
use volume::{FsError, Ino, Quota, RenameFlags};

use super::{check_name, find, DIR};
use crate::listener::Shared;

/// Bytes of quota per inode when none is asked for (as mkfs provisions).
const BYTES_PER_INODE: u64 = 16 * 1024;
/// The fewest inodes an export gets when none is asked for.
const MIN_INODES: u64 = 64;
/// How a deleted export is renamed while it is emptied: `.deleting-NAME-ROOT`.
const HIDDEN: &str = ".deleting-";
/// Entries listed per engine call while emptying an export.
const BATCH: usize = 256;

/// The answer to `cmd`: the volume's space for `Space`, every export after any other.
pub(crate) fn answer(shared: &Shared, cmd: ExportCmd) -> ServerMsg {
    match cmd {
        ExportCmd::Space => ServerMsg::Space(Ok(space(shared))),
        cmd => ServerMsg::Exports(run(shared, cmd)),
    }
}

/// The whole volume's size and what is free in it.
fn space(shared: &Shared) -> VolumeSpace {
    let s = shared.vol.with(|v| v.statfs());
    let bs = BLOCK_SIZE as u64;
    VolumeSpace {
        bytes: s.blocks * bs,
        bytes_free: s.bavail * bs,
        inodes: s.files,
        inodes_free: s.ffree,
    }
}

/// Run `cmd`: every export afterwards, or why it was refused (nothing changed then).
fn run(shared: &Shared, cmd: ExportCmd) -> Result<Vec<ExportInfo>, String> {
    match cmd {
        ExportCmd::Create {
            name,
            bytes,
            inodes,
            mode,
        } => create(shared, &name, bytes, inodes, mode, ROOTS)?,
        ExportCmd::CreateOwned {
            name,
            bytes,
            inodes,
            mode,
            uid,
            gid,
            perm,
        } => create(shared, &name, bytes, inodes, mode, (uid, gid, perm))?,
        ExportCmd::List | ExportCmd::Space => {}
        ExportCmd::Resize {
            name,
            bytes,
            inodes,
        } => resize(shared, &name, bytes, inodes)?,
        ExportCmd::Delete { name } => delete(shared, &name)?,
    }
    list(shared)
}

fn blocks(bytes: u64) -> Result<u64, String> {
    if bytes == 0 {
        return Err("an export's size must be more than 0 bytes".into());
    }
    Ok(bytes.div_ceil(BLOCK_SIZE as u64))
}

/// An export root's owner, group and permission bits.
type Owner = (u32, u32, u32);
/// The root of an export made with `Create`: root's and world-writable, as a fresh volume's
/// root (with root squashed, a root-owned 0755 root would be writable by no mount).
const ROOTS: Owner = (0, 0, 0o777);

fn create(
    shared: &Shared,
    name: &str,
    bytes: u64,
    inodes: u64,
    mode: AccessMode,
    (uid, gid, perm): Owner,
) -> Result<(), String> {
    check_name(name)?;
    if perm > 0o7777 {
        return Err(format!(
            "permission bits {perm:o} are more than 7777 (octal)"
        ));
    }
    let quota = Quota {
        max_blocks: blocks(bytes)?,
        max_inodes: match inodes {
            0 => (bytes / BYTES_PER_INODE).max(MIN_INODES),
            n => n,
        },
        tag: mode.number(),
    };
    shared
        .vol
        .run(|v| {
            let dir = match v.lookup(Ino::ROOT, DIR) {
                Err(FsError::NotFound) => v.mkdir(Ino::ROOT, DIR, 0o755, 0, 0)?,
                r => r?,
            };
            let at = v.mkdir(dir.ino, name.as_bytes(), perm, uid, gid)?;
            if let Err(e) = v.set_quota(at.ino, quota) {
                v.rmdir(dir.ino, name.as_bytes())?;
                return Err(e);
            }
            Ok(())
        })
        .map_err(|e| match e {
            FsError::Exists => format!("export {name:?} exists"),
            FsError::DiskQuota => format!("{bytes} bytes is too small for an export"),
            e => format!("export {name:?} not made: {e}"),
        })?;
    commit(shared)?;
    tracing::info!(export = name, bytes, %mode, uid, gid, perm, "export made");
    Ok(())
}

fn resize(shared: &Shared, name: &str, bytes: u64, inodes: u64) -> Result<(), String> {
    let max_blocks = blocks(bytes)?;
    shared
        .vol
        .run(|v| {
            let (root, q, _) = find(v, name).map_err(|e| FsError::Io(std::io::Error::other(e)))?;
            let quota = Quota {
                max_blocks,
                max_inodes: if inodes == 0 { q.max_inodes } else { inodes },
                tag: q.tag,
            };
            v.set_quota(Ino::new(root), quota)
        })
        .map_err(|e| match e {
            FsError::DiskQuota => format!(
                "export {name:?} holds more than {bytes} bytes (or inodes): it cannot be made \
                 smaller than what it holds"
            ),
            e => e.to_string(),
        })?;
    commit(shared)?;
    tracing::info!(export = name, bytes, "export resized");
    Ok(())
}

/// Delete export `name` and all it holds. Refused while any session (attached or in its
/// lease) is of it. Under the admission lock it is first renamed out of reach (no mount can
/// find it by name any more), then emptied and removed without that lock.
fn delete(shared: &Shared, name: &str) -> Result<(), String> {
    let (dir, root, hidden) = {
        let _one_at_a_time = shared.admission.lock().unwrap_or_else(|e| e.into_inner());
        let (root, _, _) = shared.vol.with(|v| find(v, name))?;
        let nodes = nodes_of(shared, root);
        if !nodes.is_empty() {
            return Err(format!(
                "export {name:?} is mounted on node {}: it is deleted once no one mounts it",
                nodes.join(", node ")
            ));
        }
        let hidden = format!("{HIDDEN}{name}-{root:x}");
        let dir = shared
            .vol
            .run(|v| {
                let dir = v.lookup(Ino::ROOT, DIR)?.ino;
                let flags = RenameFlags::default();
                v.rename(dir, name.as_bytes(), dir, hidden.as_bytes(), flags)?;
                Ok(dir)
            })
            .map_err(|e| format!("export {name:?} not deleted: {e}"))?;
        (dir, root, hidden)
    };
    remove_tree(shared, root)
        .and_then(|()| shared.vol.run(|v| v.rmdir(dir, hidden.as_bytes())))
        .map_err(|e| format!("export {name:?} deleted only in part: {e}"))?;
    commit(shared)?;
    tracing::info!(export = name, "export deleted");
    Ok(())
}

/// Remove everything under directory `root`, deepest first, without recursion.
fn remove_tree(shared: &Shared, root: u64) -> Result<(), FsError> {
    // Directories being emptied, each with its name in the one before it.
    let mut stack: Vec<(Ino, Vec<u8>)> = vec![(Ino::new(root), Vec::new())];
    while let Some((dir, _)) = stack.last().cloned() {
        // Cookie 2 is `..`: the listing starts after it.
        let entries = shared.vol.run(|v| v.readdir(dir, 2, BATCH))?;
        if entries.is_empty() {
            let name = stack.pop().map(|(_, name)| name).unwrap_or_default();
            if let Some((parent, _)) = stack.last() {
                shared.vol.run(|v| v.rmdir(*parent, &name))?;
            }
            continue;
        }
        for e in entries {
            if e.kind == volume::FileKind::Directory {
                stack.push((e.ino, e.name));
                break;
            }
            shared.vol.run(|v| v.unlink(dir, &e.name))?;
        }
    }
    Ok(())
}

fn commit(shared: &Shared) -> Result<(), String> {
    shared
        .vol
        .commit()
        .map_err(|e| format!("the change could not be committed: {e}"))
}

/// The nodes of the sessions of the export rooted at `root`, one per session.
fn nodes_of(shared: &Shared, root: u64) -> Vec<String> {
    let mut nodes: Vec<String> = shared
        .sessions
        .iter()
        .filter(|s| s.info.export == root)
        .map(|s| s.info.node_id.clone())
        .collect();
    nodes.sort();
    nodes
}

/// The names in `/exports` (none if there is no such directory yet).
fn entries(shared: &Shared) -> Result<Vec<Vec<u8>>, FsError> {
    shared.vol.run(|v| {
        let dir = match v.lookup(Ino::ROOT, DIR) {
            Err(FsError::NotFound) => return Ok(Vec::new()),
            r => r?,
        };
        let mut names = Vec::new();
        let mut after = 2;
        loop {
            let batch = v.readdir(dir.ino, after, BATCH)?;
            let Some(last) = batch.last() else { break };
            after = last.offset;
            names.extend(batch.into_iter().map(|e| e.name));
        }
        Ok(names)
    })
}

/// The deletes a stopped server left unfinished: `/exports/.deleting-*`, renamed out of
/// reach and not yet emptied. Taken when the server starts, before any delete of its own.
pub(crate) fn unfinished_deletes(shared: &Shared) -> Vec<Vec<u8>> {
    match entries(shared) {
        Ok(names) => names
            .into_iter()
            .filter(|n| n.starts_with(HIDDEN.as_bytes()))
            .collect(),
        Err(e) => {
            tracing::error!("unfinished export deletes not looked for: {e}");
            Vec::new()
        }
    }
}

/// Finish the deletes `hidden` names (`unfinished_deletes`): each emptied, removed and
/// committed, as the delete that was cut short would have.
pub(crate) fn finish_deletes(shared: &Shared, hidden: Vec<Vec<u8>>) {
    for name in hidden {
        let shown = String::from_utf8_lossy(&name).into_owned();
        let done = shared
            .vol
            .run(|v| {
                let dir = v.lookup(Ino::ROOT, DIR)?.ino;
                Ok((dir, v.lookup(dir, &name)?.ino))
            })
            .and_then(|(dir, root)| {
                remove_tree(shared, root.get())?;
                shared.vol.run(|v| v.rmdir(dir, &name))
            });
        match done
            .map_err(|e| e.to_string())
            .and_then(|()| commit(shared))
        {
            Ok(()) => tracing::info!(export = shown, "an unfinished export delete finished"),
            Err(e) => tracing::error!(export = shown, "an unfinished export delete failed: {e}"),
        }
    }
}

/// Every export, by name.
fn list(shared: &Shared) -> Result<Vec<ExportInfo>, String> {
    let names: Vec<String> = entries(shared)
        .map_err(|e| format!("exports not listed: {e}"))?
        .into_iter()
        .filter_map(|n| String::from_utf8(n).ok())
        .filter(|n| check_name(n).is_ok())
        .collect();
    let mut out = Vec::new();
    for name in names {
        let Ok((root, q, u)) = shared.vol.with(|v| find(v, &name)) else {
            continue;
        };
        let bs = BLOCK_SIZE as u64;
        out.push(ExportInfo {
            mode: AccessMode::from_number(q.tag).unwrap_or_default(),
            bytes: q.max_blocks * bs,
            bytes_used: u.blocks * bs,
            inodes: q.max_inodes,
            inodes_used: u.inodes,
            nodes: nodes_of(shared, root),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
