//! The Raw backend: this process runs the engine itself on an image. Exactly what the server
//! does, only placed in the client — with one writer it is a local file system; with several
//! on one image, each has its own metadata and they overwrite each other (the point of
//! `rwxfs demo`).

use std::sync::{Arc, MutexGuard};
use std::thread;
use std::time::Duration;

use volume::{
    Attr, BlockStore, DirEntry, FsResult, RenameFlags, SetAttr, SharedVolume, StatFs, Volume,
};

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

    fn v(&self) -> MutexGuard<'_, Volume<S>> {
        self.vol.lock()
    }
}

impl<S: BlockStore + 'static> Backend for RawBackend<S> {
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        self.v().lookup(parent, name)
    }
    fn getattr(&self, ino: u64) -> FsResult<Attr> {
        self.v().getattr(ino)
    }
    fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        self.v().setattr(ino, set)
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
        self.v().mknod(parent, name, mode, uid, gid, rdev)
    }
    fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        self.v().mkdir(parent, name, mode, uid, gid)
    }
    fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.v().symlink(parent, name, target, uid, gid)
    }
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        self.v().link(ino, newparent, newname)
    }
    fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        self.v().unlink(parent, name)
    }
    fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        self.v().rmdir(parent, name)
    }
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.v().rename(parent, name, newparent, newname, flags)
    }
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        self.v().readlink(ino)
    }
    fn readdir(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        self.v().readdir(ino, offset, max)
    }
    fn readdirplus(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<(DirEntry, Attr)>> {
        self.v().readdirplus(ino, offset, max)
    }
    fn create(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let mut v = self.v();
        let a = v.create(parent, name, mode, uid, gid)?;
        v.open_file(a.ino)
    }
    fn open(&self, ino: u64, _flags: i32) -> FsResult<Attr> {
        self.v().open_file(ino)
    }
    fn release(&self, ino: u64) -> FsResult<()> {
        self.v().release_file(ino)
    }
    fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        self.vol.read(ino, offset, size as usize)
    }
    fn write(&self, ino: u64, offset: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        let mut v = self.v();
        let n = v.write(ino, offset, data)?;
        if how.kill_priv && n > 0 {
            v.kill_priv(ino)?;
        }
        Ok(n as u32)
    }
    fn append(&self, ino: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        let mut v = self.v();
        let n = v.append(ino, data)?;
        if how.kill_priv && n > 0 {
            v.kill_priv(ino)?;
        }
        Ok(n as u32)
    }
    fn flush(&self, _ino: u64) -> FsResult<()> {
        Ok(())
    }
    fn fsync(&self, ino: u64) -> FsResult<()> {
        self.vol.fsync(ino)
    }
    fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        self.vol.run(|v| v.fallocate(ino, offset, len, mode))
    }
    fn statfs(&self) -> FsResult<StatFs> {
        Ok(self.v().statfs())
    }
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        self.v().getxattr(ino, name)
    }
    fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        self.v().setxattr(ino, name, value, flags)
    }
    fn listxattr(&self, ino: u64) -> FsResult<Vec<Vec<u8>>> {
        self.v().listxattr(ino)
    }
    fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        self.v().removexattr(ino, name)
    }
    fn shutdown(&self) -> FsResult<()> {
        self.vol.commit()
    }
}
