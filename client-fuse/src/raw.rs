//! The Raw backend: this process runs the engine itself on an image, a local transport to
//! it. Each call is built as the same `Request` a remote mount sends and run through the same
//! table of operations (`ops`) the server runs it through — only placed in the client. With
//! one writer it is a local file system; with several on one image, each has its own
//! metadata and they overwrite each other (the point of `rwxfs demo`).

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ops::Trusted;
use protocol::{Attr, DirEntry, RenameFlags, Request, Response, SetAttr, StatFs};
use volume::{BlockStore, FsError, FsResult, SharedVolume, Volume};

use crate::backend::{Backend, WriteHow};

/// How often pending metadata is committed if nothing forces it sooner.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

pub struct RawBackend<S: BlockStore + 'static> {
    vol: Arc<SharedVolume<S>>,
}

impl<S: BlockStore + 'static> RawBackend<S> {
    /// Wrap an opened volume and start the periodic commit.
    pub fn new(vol: Volume<S>) -> RawBackend<S> {
        let vol = Arc::new(SharedVolume::new(vol));
        let weak = Arc::downgrade(&vol);
        thread::Builder::new()
            .name("rwxfs-commit".into())
            .spawn(move || loop {
                thread::sleep(COMMIT_INTERVAL / 2);
                let Some(v) = weak.upgrade() else { return };
                if let Err(e) = v.commit_if_older(COMMIT_INTERVAL) {
                    tracing::error!("periodic commit failed: {e}");
                }
            })
            .ok();
        RawBackend { vol }
    }

    /// Run `req` through the table of operations. Permissions were checked by this mount's
    /// kernel (default_permissions), as a local file system leaves them to it.
    fn call(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)> {
        let (r, out) = ops::execute(&self.vol, req, bulk, &Trusted);
        r.map(|resp| (resp, out))
    }

    fn attr(&self, req: Request) -> FsResult<Attr> {
        match self.call(req, &[])?.0 {
            Response::Attr(a) => Ok(a),
            _ => Err(FsError::Invalid),
        }
    }

    fn empty(&self, req: Request) -> FsResult<()> {
        self.call(req, &[]).map(|_| ())
    }

    fn written(&self, req: Request, data: &[u8]) -> FsResult<u32> {
        match self.call(req, data)?.0 {
            Response::Written(n) => Ok(n),
            _ => Err(FsError::Invalid),
        }
    }

    fn bytes(&self, req: Request) -> FsResult<Vec<u8>> {
        match self.call(req, &[])? {
            (Response::Bytes(b), _) | (Response::Data, b) => Ok(b),
            _ => Err(FsError::Invalid),
        }
    }
}

impl<S: BlockStore + 'static> Backend for RawBackend<S> {
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let name = name.to_vec();
        self.attr(Request::Lookup { parent, name })
    }
    fn getattr(&self, ino: u64) -> FsResult<Attr> {
        self.attr(Request::Getattr { ino })
    }
    fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        self.attr(Request::Setattr { ino, set })
    }
    fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let name = name.to_vec();
        self.attr(Request::Mknod {
            parent,
            name,
            mode,
            rdev,
            uid,
            gid,
        })
    }
    fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let name = name.to_vec();
        self.attr(Request::Mkdir {
            parent,
            name,
            mode,
            uid,
            gid,
        })
    }
    fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let (name, target) = (name.to_vec(), target.to_vec());
        self.attr(Request::Symlink {
            parent,
            name,
            target,
            uid,
            gid,
        })
    }
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        let newname = newname.to_vec();
        self.attr(Request::Link {
            ino,
            newparent,
            newname,
        })
    }
    fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let name = name.to_vec();
        self.empty(Request::Unlink { parent, name })
    }
    fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let name = name.to_vec();
        self.empty(Request::Rmdir { parent, name })
    }
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        let (name, newname) = (name.to_vec(), newname.to_vec());
        self.empty(Request::Rename {
            parent,
            name,
            newparent,
            newname,
            flags,
        })
    }
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        self.bytes(Request::Readlink { ino })
    }
    fn readdir(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        let max = max.min(u32::MAX as usize) as u32;
        match self.call(Request::Readdir { ino, offset, max }, &[])?.0 {
            Response::Entries(es) => Ok(es),
            _ => Err(FsError::Invalid),
        }
    }
    fn readdirplus(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<(DirEntry, Attr)>> {
        let max = max.min(u32::MAX as usize) as u32;
        match self.call(Request::Readdirplus { ino, offset, max }, &[])?.0 {
            Response::EntriesPlus(es) => Ok(es),
            _ => Err(FsError::Invalid),
        }
    }
    fn create(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let name = name.to_vec();
        self.attr(Request::Create {
            parent,
            name,
            mode,
            uid,
            gid,
        })
    }
    fn open(&self, ino: u64, flags: i32) -> FsResult<Attr> {
        self.attr(Request::Open { ino, flags })
    }
    fn release(&self, ino: u64) -> FsResult<()> {
        self.empty(Request::Release { ino })
    }
    fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        self.bytes(Request::Read { ino, offset, size })
    }
    fn write(&self, ino: u64, offset: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        let kill_priv = how.kill_priv;
        let req = Request::Write {
            ino,
            offset,
            kill_priv,
        };
        self.written(req, data)
    }
    fn append(&self, ino: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        let kill_priv = how.kill_priv;
        self.written(Request::Append { ino, kill_priv }, data)
    }
    fn flush(&self, _ino: u64) -> FsResult<()> {
        Ok(())
    }
    fn fsync(&self, ino: u64) -> FsResult<()> {
        self.empty(Request::Fsync { ino })
    }
    fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        self.empty(Request::Fallocate {
            ino,
            offset,
            len,
            mode,
        })
    }
    fn statfs(&self) -> FsResult<StatFs> {
        match self.call(Request::Statfs, &[])?.0 {
            Response::StatFs(s) => Ok(s),
            _ => Err(FsError::Invalid),
        }
    }
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let name = name.to_vec();
        self.bytes(Request::Getxattr { ino, name })
    }
    fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        let (name, value) = (name.to_vec(), value.to_vec());
        self.empty(Request::Setxattr {
            ino,
            name,
            value,
            flags,
        })
    }
    fn listxattr(&self, ino: u64) -> FsResult<Vec<Vec<u8>>> {
        match self.call(Request::Listxattr { ino }, &[])?.0 {
            Response::Names(names) => Ok(names),
            _ => Err(FsError::Invalid),
        }
    }
    fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        let name = name.to_vec();
        self.empty(Request::Removexattr { ino, name })
    }
    fn shutdown(&self) -> FsResult<()> {
        self.vol.commit()
    }
}
