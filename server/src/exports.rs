//! Named exports: directories of the volume under `/exports`, each the root of a quota tree
//! (`volume::quota`) whose limits and access mode live in its root's inode, mounted as
//! `HOST:PORT/NAME`. A mount of one is confined to it: the export's root is its root (inode
//! 1 both ways, `inbound` and `outbound`), `..` there stays there, and a call naming an
//! inode of any other tree is refused as a stale handle (`confine`) before it runs. The
//! engine keeps names from crossing trees (EXDEV), so what is inside stays inside.
//! What an administrator does to exports is `admin`.

pub(crate) mod admin;

use protocol::{AccessMode, Request, Response};
use volume::layout::ROOT_INO;
use volume::{FsError, FsResult, Ino, Quota, Usage, Volume};

use crate::Store;

/// The directory of the volume's root that holds the exports.
pub(crate) const DIR: &[u8] = b"exports";

/// An export a mount is of: its root's inode number (generation included) and its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mounted {
    /// The root of its tree.
    pub root: u64,
    /// How its mounts are admitted.
    pub mode: AccessMode,
}

/// An export's name: 1 to 200 of letters, digits, `-`, `_` and `.`, not starting with `.`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an export name (1 to 200 letters, digits, '-', '_' or '.', \
             not starting with '.')"
        ))
    }
}

/// Export `name`: its root, limits and use.
pub(crate) fn find(v: &mut Volume<Store>, name: &str) -> Result<(u64, Quota, Usage), String> {
    check_name(name)?;
    let missing = || format!("no export named {name:?} on this server");
    let dir = v.lookup(Ino::ROOT, DIR).map_err(|_| missing())?;
    let at = v.lookup(dir.ino, name.as_bytes()).map_err(|_| missing())?;
    match v.quota_of(at.ino).map_err(|e| e.to_string())? {
        Some((root, q, u)) if root == at.ino => Ok((root.get(), q, u)),
        _ => Err(format!(
            "{name:?} in /exports is a directory of the volume, not an export"
        )),
    }
}

/// The export a mount of `name` is of.
pub(crate) fn resolve(v: &mut Volume<Store>, name: &str) -> Result<Mounted, String> {
    let (root, q, _) = find(v, name)?;
    let mode = AccessMode::from_number(q.tag)
        .ok_or_else(|| format!("export {name:?} has an unknown access mode ({})", q.tag))?;
    Ok(Mounted { root, mode })
}

/// A call of a mount of the export rooted at `root`, as the engine takes it: its inode 1 is
/// the export's root, and `..` of the root is the root.
pub(crate) fn inbound(root: u64, req: &mut Request) {
    req.map_inodes(&|ino| if ino == ROOT_INO { root } else { ino });
    if let Request::Lookup { parent, name } = req {
        if *parent == root && name.as_slice() == b".." {
            *name = b".".to_vec();
        }
    }
}

/// An answer to a mount of the export rooted at `root`, as it sees it: the root is inode 1,
/// and a listing of the root gives `..` as the root itself (with `root_attr`, its attributes,
/// where the listing has them).
pub(crate) fn outbound(
    root: u64,
    lists_root: bool,
    root_attr: impl FnOnce() -> Option<protocol::Attr>,
    resp: &mut Response,
) {
    if lists_root {
        match resp {
            Response::Entries(es) => es
                .iter_mut()
                .filter(|e| e.name == b"..")
                .for_each(|e| e.ino = root),
            Response::EntriesPlus(es) => {
                if let Some(at) = es.iter().position(|(e, _)| e.name == b"..") {
                    if let Some(a) = root_attr() {
                        es[at] = (
                            protocol::DirEntry {
                                ino: root,
                                ..es[at].0.clone()
                            },
                            a,
                        );
                    } else {
                        es.remove(at);
                    }
                }
            }
            _ => {}
        }
    }
    resp.map_inodes(&|ino| shown(root, ino));
}

/// Inode `ino` as a mount of the export rooted at `root` (0: the whole volume) knows it.
pub(crate) fn shown(root: u64, ino: u64) -> u64 {
    if root != 0 && ino == root {
        ROOT_INO
    } else {
        ino
    }
}

/// Refuse (as a stale handle) a call of a mount of the export rooted at `root` that names
/// an inode outside it. Sound before the call runs: no name moves an inode into another
/// tree, and an inode number freed and used again has another generation.
pub(crate) fn confine(v: &mut Volume<Store>, root: u64, req: &Request) -> FsResult<()> {
    let m = req.meta();
    let dirs = m.entries.iter().map(|(d, _)| *d);
    for ino in m.inode.into_iter().chain(dirs) {
        match v.quota_of(Ino::new(ino))? {
            Some((r, _, _)) if r.get() == root => {}
            _ => return Err(FsError::Stale),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_the_root_maps_both_ways() {
        assert!(check_name("pvc-1234_a.b").is_ok());
        for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(201)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let root = 0x0001_0000_0000_0007;
        let mut req = Request::Lookup {
            parent: ROOT_INO,
            name: b"..".to_vec(),
        };
        inbound(root, &mut req);
        assert_eq!(
            req,
            Request::Lookup {
                parent: root,
                name: b".".to_vec()
            }
        );
        assert_eq!(shown(root, root), ROOT_INO);
        assert_eq!(shown(root, 9), 9);
        assert_eq!(shown(0, 1), 1);
    }
}
