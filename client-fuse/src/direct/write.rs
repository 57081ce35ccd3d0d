//! A direct write made (by a worker of `behind`, after its answer): through write layouts
//! onto the volume, noted for its commit, and what no layout may be used for through the
//! server.

use protocol::{Layout, Request};
use volume::{FsError, FsResult};

use super::behind::Job;
use super::pending::Due;
use super::{lock, DirectBackend};
use crate::backend::{Backend, WriteHow};

impl DirectBackend {
    /// A write answered before it was made, made now. A failure is the file's: reported by
    /// its next write, and by every flush and fsync until its last close on this mount.
    pub(super) fn write_queued(&self, job: Job) {
        let (ino, token, len) = (job.ino, job.token, job.data.len());
        let r = self.write_now(ino, job.offset, job.data, job.kill_priv);
        if let Err(e) = &r {
            tracing::error!("a write of {len} bytes to inode {ino} failed: {e}");
            lock(&self.failed).insert(ino, e.errno());
        }
        self.behind
            .wb
            .end(ino, token, len, r.map_err(|e| e.errno()));
    }

    /// A write to the volume at the extents of write layouts; the part the server gives
    /// none for (another mount's uncommitted blocks are in the range, or privileges the
    /// writer must drop on the file) or that may no longer be used (`fence`) goes through
    /// the server, after the commit of what went directly.
    fn write_now(&self, ino: u64, offset: u64, data: Vec<u8>, kill_priv: bool) -> FsResult<()> {
        let len = data.len();
        let (due, rest) = self.write_layouts(ino, offset, data, kill_priv)?;
        match due {
            Due::Now => self.commit(ino)?,
            Due::Soon => self.behind.commit_soon(ino),
            Due::Not => {}
        }
        if !rest.is_empty() {
            self.commit(ino)?;
            let at = offset + (len - rest.len()) as u64;
            let how = WriteHow {
                kill_priv,
                ..WriteHow::default()
            };
            // Made on a store whose writes land late (RADOS), the server's write may not
            // have landed when this mount reads the blocks: a layout asked for anew waits.
            self.reads.forget(ino);
            self.remote.write(ino, at, &rest, how)?;
        }
        Ok(())
    }

    /// Write what layouts are given for, from the start, and note it for its commit: whether
    /// the file's writes are due for it, and the rest, which no layout was used for.
    fn write_layouts(
        &self,
        ino: u64,
        offset: u64,
        mut data: Vec<u8>,
        kill_priv: bool,
    ) -> FsResult<(Due, Vec<u8>)> {
        let _using = self.using(ino);
        // Before the layouts: a restart after this is seen at the commit.
        let given = (self.remote.incarnation(), self.remote.lock_epoch());
        let mut pos = 0usize;
        while pos < data.len() {
            let at = offset + pos as u64;
            let req = Request::LayoutGet {
                ino,
                offset: at,
                len: (data.len() - pos) as u64,
                write: true,
                kill_priv,
            };
            let l: Layout = match self.server(req) {
                // Another mount's uncommitted blocks, no room (the quota counts reserved
                // blocks, and the server may find room a layout could not), or setuid,
                // setgid or capabilities the writer must drop: through the server, which
                // answers for itself (and drops them before the data appears).
                Err(
                    FsError::WouldBlock
                    | FsError::DiskQuota
                    | FsError::NoSpace
                    | FsError::NotPermitted,
                ) => break,
                r => r?,
            };
            if self.fenced(ino, given) {
                break;
            }
            let covered = self.write_extents(&l, at, &data[pos..])?;
            if covered == 0 {
                return Err(FsError::Io(std::io::Error::other("an empty write layout")));
            }
            pos += covered;
        }
        let rest = data.split_off(pos);
        // Noted while the layouts are in use: a recall, which waits for that, commits it.
        let due = match pos {
            0 => Due::Not,
            _ => {
                let writer = crate::caller::current();
                self.pending
                    .note(ino, (offset, data), (writer, kill_priv), given)
            }
        };
        Ok((due, rest))
    }

    /// Write `data` (at file offset `at`) where the layout's extents say; the bytes it
    /// covered from `at` on, without a gap (the caller asks again for the rest).
    fn write_extents(&self, l: &Layout, at: u64, data: &[u8]) -> FsResult<usize> {
        let end = at + data.len() as u64;
        let mut covered = 0usize;
        for e in &l.extents {
            let from = e.offset.max(at);
            let to = (e.offset + e.len).min(end);
            if from >= to {
                continue;
            }
            if from > at + covered as u64 {
                break;
            }
            let disk = e
                .disk
                .ok_or_else(|| FsError::Io(std::io::Error::other("a write layout with a hole")))?;
            let bytes = &data[(from - at) as usize..(to - at) as usize];
            self.store
                .write_at(bytes, disk + (from - e.offset))
                .map_err(FsError::Io)?;
            covered = covered.max((to - at) as usize);
        }
        Ok(covered)
    }
}
