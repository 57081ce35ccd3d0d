//! The table itself: each request as the engine calls that make it, with the engine held,
//! in parts by concern (data, attributes, names). Reads, writes and fsyncs are here so the
//! table is whole; `execute` runs them itself, with their disk I/O outside the hold.

use protocol::{Request, Response};
use volume::{Attr, BlockStore, FsError, Volume};

use crate::{Answer, Hooks};
use volume::Ino;

/// Run `req` (with its bulk bytes) on the engine held. Each part of the table takes the
/// calls it knows and gives the others back, so a new call is one arm in the part it
/// belongs to. Locks are the lock manager's, never the engine's: no part takes them.
pub(crate) fn run<S: BlockStore>(
    v: &mut Volume<S>,
    req: Request,
    bulk: &[u8],
    hooks: &dyn Hooks<S>,
) -> Answer {
    // See `execute`: it does a read's disk I/O outside the engine's lock.
    if let Request::Read { ino, offset, size } = req {
        return match v.read(Ino::new(ino), offset, size.min(crate::MAX_READ) as usize) {
            Ok(d) => (Ok(Response::Data), d),
            Err(e) => (Err(e), Vec::new()),
        };
    }
    let r = data(v, req, bulk)
        .or(|req| attrs(v, req, hooks))
        .or(|req| names(v, req))
        .or(|req| layouts(v, req, hooks));
    match r {
        Part::Ran(r) => (r, Vec::new()),
        Part::NotMine(_) => (Err(FsError::NotSupported), Vec::new()),
    }
}

/// What a part of the table did with a call.
enum Part {
    /// Ran it: its answer.
    Ran(Result<Response, FsError>),
    /// Gave it back: not this part's.
    NotMine(Request),
}

impl Part {
    /// This answer, or what the next part does with a call given back.
    fn or(self, next: impl FnOnce(Request) -> Part) -> Part {
        match self {
            Part::NotMine(req) => next(req),
            ran => ran,
        }
    }
}

/// Names: lookups, listings, and calls that make, link, remove or rename them.
fn names<S: BlockStore>(v: &mut Volume<S>, req: Request) -> Part {
    Part::Ran(match req {
        Request::Lookup { parent, name } => v.lookup(Ino::new(parent), &name).map(attr),
        Request::Link {
            ino,
            newparent,
            newname,
        } => v
            .link(Ino::new(ino), Ino::new(newparent), &newname)
            .map(attr),
        Request::Unlink { parent, name } => {
            v.unlink(Ino::new(parent), &name).map(|_| Response::Empty)
        }
        Request::Rmdir { parent, name } => {
            v.rmdir(Ino::new(parent), &name).map(|_| Response::Empty)
        }
        Request::Rename {
            parent,
            name,
            newparent,
            newname,
            flags,
        } => v
            .rename(
                Ino::new(parent),
                &name,
                Ino::new(newparent),
                &newname,
                flags.into(),
            )
            .map(|_| Response::Empty),
        Request::Readlink { ino } => v.readlink(Ino::new(ino)).map(Response::Bytes),
        Request::Readdir { ino, offset, max } => v
            .readdir(Ino::new(ino), offset, max.min(4096) as usize)
            .map(|es| Response::Entries(es.into_iter().map(Into::into).collect())),
        Request::Readdirplus { ino, offset, max } => v
            .readdirplus(Ino::new(ino), offset, max.min(4096) as usize)
            .map(|es| {
                let es = es.into_iter().map(|(e, a)| (e.into(), a.into()));
                Response::EntriesPlus(es.collect())
            }),
        // A create opens what it made; the other makers do not.
        req @ Request::Create { .. } => make(v, req).and_then(|a| v.open_file(a.ino)).map(attr),
        req @ (Request::Mknod { .. } | Request::Mkdir { .. } | Request::Symlink { .. }) => {
            make(v, req).map(attr)
        }
        Request::CreateAgain { ino, req } => {
            v.create_again(Ino::new(ino), |v| make(v, *req)).map(attr)
        }
        req => return Part::NotMine(req),
    })
}

/// A file's data, and its opens and closes.
fn data<S: BlockStore>(v: &mut Volume<S>, req: Request, bulk: &[u8]) -> Part {
    Part::Ran(match req {
        Request::Open { ino, .. } => v.open_file(Ino::new(ino)).map(attr),
        Request::Release { ino } => v.release_file(Ino::new(ino)).map(|_| Response::Empty),
        Request::Write {
            ino,
            offset,
            kill_priv,
        } => v.write(Ino::new(ino), offset, bulk).and_then(|n| {
            if kill_priv && n > 0 {
                v.kill_priv(Ino::new(ino))?;
            }
            Ok(Response::Written(n as u32))
        }),
        Request::Fsync { ino } => v.fsync(Ino::new(ino)).map(|_| Response::Empty), // see `execute`
        Request::Fallocate {
            ino,
            offset,
            len,
            mode,
            kill_priv,
        } => v.fallocate(Ino::new(ino), offset, len, mode).and_then(|_| {
            if kill_priv {
                v.kill_priv(Ino::new(ino))?;
            }
            Ok(Response::Empty)
        }),
        Request::Lseek {
            ino,
            offset,
            whence,
        } => v.lseek(Ino::new(ino), offset, whence).map(Response::Offset),
        Request::Append { ino, kill_priv } => v.append(Ino::new(ino), bulk).and_then(|n| {
            if kill_priv && n > 0 {
                v.kill_priv(Ino::new(ino))?;
            }
            Ok(Response::Written(n as u32))
        }),
        req => return Part::NotMine(req),
    })
}

/// Direct mode: layouts of a file's blocks for a client that moves its data itself, held by
/// the placement's holder (`Hooks::holder`), and where the volume lives.
fn layouts<S: BlockStore>(v: &mut Volume<S>, req: Request, hooks: &dyn Hooks<S>) -> Part {
    let holder = hooks.holder();
    Part::Ran(match req {
        Request::LayoutGet {
            ino,
            offset,
            len,
            write,
            kill_priv,
        } => {
            let want = (offset, len, write);
            layout_get(v, holder, Ino::new(ino), want, kill_priv)
                .map(|l| Response::Layout(l.into()))
        }
        Request::LayoutCommit {
            ino,
            written,
            size,
            mtime,
            kill_priv,
        } => {
            let ino = Ino::new(ino);
            v.layout_commit(holder, ino, &written, size, mtime.map(Into::into))
                .and_then(|a| match kill_priv && !written.is_empty() {
                    // Those set since its layouts were given go, as at a write through it.
                    true => v.kill_priv(ino).and_then(|()| v.getattr(ino)),
                    false => Ok(a),
                })
                .map(attr)
        }
        Request::LayoutReturn { ino } => {
            v.layout_return(holder, Ino::new(ino));
            Ok(Response::Empty)
        }
        Request::VolumeLocation => hooks
            .location()
            .map(Response::Location)
            .ok_or(FsError::NotSupported),
        Request::StoreClient { address } => hooks.store_client(&address).map(|()| Response::Empty),
        req => return Part::NotMine(req),
    })
}

/// A layout of `(offset, len)` of `ino`, for writing if `write`; refused for the writes of
/// a caller who may not keep the file's setuid, setgid or capabilities (`kill_priv`) while
/// it has them: those go through the placement's own writes, which drop them first.
fn layout_get<S: BlockStore>(
    v: &mut Volume<S>,
    holder: u64,
    ino: Ino,
    (offset, len, write): (u64, u64, bool),
    kill_priv: bool,
) -> volume::FsResult<volume::Layout> {
    if write && kill_priv && v.has_priv_to_kill(ino)? {
        return Err(FsError::NotPermitted);
    }
    v.layout_get(holder, ino, offset, len, write)
}

/// Attributes, extended attributes, and the volume's statistics as the caller sees them:
/// those of the quota tree its root is in (`Hooks::root`).
fn attrs<S: BlockStore>(v: &mut Volume<S>, req: Request, hooks: &dyn Hooks<S>) -> Part {
    Part::Ran(match req {
        Request::Getattr { ino } => v.getattr(Ino::new(ino)).map(attr),
        Request::Setattr { ino, set } => v.setattr(Ino::new(ino), set.into()).map(attr),
        Request::Statfs => match hooks.root() {
            Some(root) => v.statfs_at(Ino::new(root)),
            None => Ok(v.statfs()),
        }
        .map(|s| Response::StatFs(s.into())),
        Request::Getxattr { ino, name } => v.getxattr(Ino::new(ino), &name).map(Response::Bytes),
        Request::Setxattr {
            ino,
            name,
            value,
            flags,
        } => v
            .setxattr(Ino::new(ino), &name, &value, flags)
            .map(|_| Response::Empty),
        Request::Listxattr { ino } => v.listxattr(Ino::new(ino)).map(Response::Names),
        Request::Removexattr { ino, name } => {
            v.removexattr(Ino::new(ino), &name).map(|_| Response::Empty)
        }
        req => return Part::NotMine(req),
    })
}

/// The engine's attributes as an answer.
fn attr(a: Attr) -> Response {
    Response::Attr(a.into())
}

/// The engine call of a call that makes an inode (`Request::meta().makes`), and nothing
/// more: run as itself, or again after a restart at the inode number its first run gave (the
/// engine holds it there), where a replayed `Create` leaves the file unopened: its client
/// opens what it holds.
fn make<S: BlockStore>(v: &mut Volume<S>, req: Request) -> Result<Attr, FsError> {
    match req {
        Request::Create {
            parent,
            name,
            mode,
            uid,
            gid,
        } => v.create(Ino::new(parent), &name, mode, uid, gid),
        Request::Mknod {
            parent,
            name,
            mode,
            rdev,
            uid,
            gid,
        } => v.mknod(Ino::new(parent), &name, mode, uid, gid, rdev),
        Request::Mkdir {
            parent,
            name,
            mode,
            uid,
            gid,
        } => v.mkdir(Ino::new(parent), &name, mode, uid, gid),
        Request::Symlink {
            parent,
            name,
            target,
            uid,
            gid,
        } => v.symlink(Ino::new(parent), &name, &target, uid, gid),
        _ => Err(FsError::Invalid),
    }
}
