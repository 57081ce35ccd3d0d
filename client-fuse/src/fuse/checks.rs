//! What a call must pass before it goes to the backend, or after: a read-only mount refuses
//! changes, a file whose locks were lost refuses I/O, and an fsync or close reports what a
//! server restart lost for good.

use volume::{FsError, FsResult};

use super::reply::eio;
use super::RwxFuse;

impl RwxFuse {
    /// After an fsync or a close: EIO if a server restart lost changes to `ino` that could
    /// not be sent again (the backend notes them as it sends them, and forgets them at the
    /// file's last close). An fsync commits the
    /// whole volume, so it also answers for this mount's lost name changes.
    pub(super) fn writes_survived(&self, ino: u64, fsync: bool) -> FsResult<()> {
        if self.backend.lost(ino, fsync) {
            tracing::warn!("changes to {ino} (or to names) were lost in a server restart");
            return Err(eio());
        }
        Ok(())
    }

    /// EROFS on a read-only mount.
    pub(super) fn writable(&self) -> FsResult<()> {
        if self.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// `f`, unless the mount is read-only.
    pub(super) fn writing<T>(&self, f: impl FnOnce() -> FsResult<T>) -> FsResult<T> {
        self.writable()?;
        f()
    }

    /// EIO if the locks taken on `ino` through this mount were lost with their session.
    pub(super) fn locks_intact(&self, ino: u64) -> FsResult<()> {
        self.locks.intact(&*self.backend, ino)
    }
}
