//! The one table of operations: a `Request` against a `SharedVolume` becomes engine calls and
//! a `Response` (with any bulk bytes). The server runs every call of its clients through it,
//! and a raw mount runs its own through it in its process: nothing differs between the two
//! but where the engine sits.
//!
//! What every placement needs is done here once: a call too large for one transaction is
//! stepped (`FsError::Again`: commit, go on); a call that ran out of space while blocks freed
//! a moment ago wait for their commit commits and runs once more; a write that may not keep
//! setuid and setgid drops them in the same transaction. The placement adds what it needs
//! through `Hooks`, called with the engine held: a permission check right before the engine
//! work (so nothing can change what it allowed in between), and a record of each change.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod table;

use protocol::{Request, Response};
use volume::Ino;
use volume::{BlockStore, FsError, FsResult, SharedVolume, Volume};

/// What a placement does around a call, with the engine held.
pub trait Hooks<S: BlockStore> {
    /// Right before the call's engine work, in the same hold: refuse the call (the error is
    /// its answer) or adjust it (a create made the caller's own). Called again for each step
    /// or retry, each time under the hold that does the work. `FsError::Again` for a call
    /// that changes the volume asks for a commit first: the call runs again after it.
    fn authorize(&self, v: &mut Volume<S>, req: &mut Request) -> FsResult<()>;
    /// A call that changes the volume succeeded: its changes are in transaction `seq`; its
    /// response and bulk bytes as they will be answered.
    fn record(&self, seq: u64, resp: &Response, out: &[u8]);
    /// Who the call's layouts are for (direct mode): the server's session, one number for
    /// everything a placement with a single client does.
    fn holder(&self) -> u64 {
        0
    }
    /// The inode the caller sees as the volume's root (an export's): `Statfs` is of the quota
    /// tree it is in. `None` for the volume's root.
    fn root(&self) -> Option<u64> {
        None
    }
    /// Where the volume lives, for a client that reads and writes file data on it itself
    /// (`Request::VolumeLocation`); `None` where no client may (`NotSupported`).
    fn location(&self) -> Option<protocol::VolumeAt> {
        None
    }
    /// The caller reads and writes the volume as the store's client at `address`
    /// (`Request::StoreClient`), for the placement to fence it there; `NotSupported` where
    /// no client may.
    fn store_client(&self, _address: &str) -> FsResult<()> {
        Err(FsError::NotSupported)
    }
    /// A call succeeded with `resp`, in the hold that made it (what it hands out to the
    /// caller, such as the inodes of a lookup).
    fn answered(&self, _resp: &Response) {}
    /// Space ran out: give back what the placement holds that frees space (true if any),
    /// before the call is run once more after a commit.
    fn free_space(&self, _v: &mut Volume<S>) -> bool {
        false
    }
}

/// A placement that neither checks nor records: a raw mount, where the caller's kernel
/// checked permissions and nothing outlives the process but the volume.
pub struct Trusted;

impl<S: BlockStore> Hooks<S> for Trusted {
    fn authorize(&self, _: &mut Volume<S>, _: &mut Request) -> FsResult<()> {
        Ok(())
    }
    fn record(&self, _: u64, _: &Response, _: &[u8]) {}
}

/// A call's answer: its response or error, and bulk bytes (read data) to send with it.
pub type Answer = (FsResult<Response>, Vec<u8>);

/// Largest read one call answers.
pub const MAX_READ: u32 = 1 << 20;

/// Run `req` (with its bulk bytes). Reads and fsyncs do their disk I/O without holding the
/// engine, and so do writes (their blocks mapped under it, their data written outside);
/// everything else runs with the engine to itself.
pub fn execute<S: BlockStore>(
    vol: &SharedVolume<S>,
    req: Request,
    bulk: &[u8],
    hooks: &dyn Hooks<S>,
) -> Answer {
    match req {
        Request::Fsync { ino } => (fsync(vol, req, ino, hooks), Vec::new()),
        Request::Write {
            ino,
            offset,
            kill_priv,
        } => {
            let r = with_space(vol, hooks, || {
                write(vol, &req, ino, offset, kill_priv, bulk, hooks)
            });
            (r.map(|n| Response::Written(n as u32)), Vec::new())
        }
        Request::Read { ino, offset, size } => {
            let size = size.min(MAX_READ) as usize;
            let check = |v: &mut Volume<S>| hooks.authorize(v, &mut req.clone());
            match vol.read_checked(Ino::new(ino), offset, size, check) {
                Ok(d) => (Ok(Response::Data), d),
                Err(e) => (Err(e), Vec::new()),
            }
        }
        req if req.mutates() => mutation(vol, req, bulk, hooks),
        req @ Request::LayoutGet { .. } => (layout_get(vol, req, hooks), Vec::new()),
        mut req => vol.with(|v| match hooks.authorize(v, &mut req) {
            Ok(()) => {
                let (r, out) = table::run(v, req, bulk, hooks);
                if let Ok(resp) = &r {
                    hooks.answered(resp);
                }
                (r, out)
            }
            Err(e) => (Err(e), Vec::new()),
        }),
    }
}

/// A layout, given in one hold of the engine and handed out once the engine's own writes to
/// the blocks it maps (a write through the placement just before) have landed, waited for
/// after the hold: on a store whose writes land late (RADOS) a read through it would show
/// the older bytes, and those would land over a write through it. A write layout reserves
/// blocks: asked once more after a commit if freed ones were waiting for it.
fn layout_get<S: BlockStore>(
    vol: &SharedVolume<S>,
    req: Request,
    hooks: &dyn Hooks<S>,
) -> FsResult<Response> {
    let write = matches!(req, Request::LayoutGet { write: true, .. });
    let get = || {
        let (resp, store) = vol.with(|v| {
            hooks.authorize(v, &mut req.clone())?;
            let resp = table::run(v, req.clone(), &[], hooks).0?;
            FsResult::Ok((resp, v.shared_store()))
        })?;
        if let Response::Layout(l) = &resp {
            // Reserved blocks are the holder's alone (their zeros landed in the hold).
            for e in l.extents.iter().filter(|e| !e.reserved) {
                if let Some(disk) = e.disk {
                    store.applied(disk, e.len)?;
                }
            }
        }
        Ok(resp)
    };
    match write {
        true => with_space(vol, hooks, get),
        false => get(),
    }
}

/// A call that changes the volume: checked and run in one hold, recorded in it if it
/// succeeded; stepped while it is too large for one transaction; run once more after a
/// commit if it ran out of space while freed blocks waited for one.
fn mutation<S: BlockStore>(
    vol: &SharedVolume<S>,
    req: Request,
    bulk: &[u8],
    hooks: &dyn Hooks<S>,
) -> Answer {
    let once = || {
        vol.with(|v| {
            let mut req = req.clone();
            if let Err(e) = hooks.authorize(v, &mut req) {
                return (Err(e), Vec::new());
            }
            let seq = v.next_seq();
            let (r, out) = table::run(v, req, bulk, hooks);
            if let Ok(resp) = &r {
                hooks.record(seq, resp, &out);
                hooks.answered(resp);
            }
            (r, out)
        })
    };
    let stepped = || {
        let (mut r, mut out) = once();
        // Each step stopped at a boundary that leaves the volume consistent: commit it, and
        // the call goes on from where it stopped.
        while matches!(r, Err(FsError::Again)) {
            vol.commit()?;
            (r, out) = once();
        }
        r.map(|resp| (resp, out))
    };
    match with_space(vol, hooks, stepped) {
        Ok((resp, out)) => (Ok(resp), out),
        Err(e) => (Err(e), Vec::new()),
    }
}

/// Run `op`; if it ran out of space while blocks freed a moment ago wait for their commit to
/// end, or the placement held files that free space (`Hooks::free_space`), commit and run it
/// once more: the writer gets that space, not ENOSPC.
fn with_space<S: BlockStore, R>(
    vol: &SharedVolume<S>,
    hooks: &dyn Hooks<S>,
    op: impl Fn() -> FsResult<R>,
) -> FsResult<R> {
    let freed = || vol.with(|v| hooks.free_space(v) | (v.quarantined_blocks() > 0));
    match op() {
        Err(FsError::NoSpace) if freed() => {
            vol.commit()?;
            op()
        }
        r => r,
    }
}

/// A write: checked and its blocks mapped in one hold, its data written outside it, its size
/// set (and setuid and setgid dropped, and the change recorded) in the next.
fn write<S: BlockStore>(
    vol: &SharedVolume<S>,
    req: &Request,
    ino: u64,
    offset: u64,
    kill_priv: bool,
    bulk: &[u8],
    hooks: &dyn Hooks<S>,
) -> FsResult<usize> {
    let check = |v: &mut Volume<S>| hooks.authorize(v, &mut req.clone());
    vol.write_checked(Ino::new(ino), offset, bulk, check, |v, n| {
        if kill_priv && n > 0 {
            v.kill_priv(Ino::new(ino))?;
        }
        // Tagged now: the size lands in this transaction, the blocks earlier.
        hooks.record(v.next_seq(), &Response::Written(n as u32), &[]);
        Ok(())
    })
}

/// fsync: checked in the hold that finds the file, then everything committed.
fn fsync<S: BlockStore>(
    vol: &SharedVolume<S>,
    mut req: Request,
    ino: u64,
    hooks: &dyn Hooks<S>,
) -> FsResult<Response> {
    vol.with(|v| {
        hooks.authorize(v, &mut req)?;
        v.getattr(Ino::new(ino))
    })?;
    vol.commit()?;
    Ok(Response::Empty)
}

#[cfg(test)]
mod tests;
