//! Disk I/O planned with the engine and done without it: `ReadPlan` and `WritePlan`, and the
//! count of those in flight that a commit waits for. Invariant (ordered mode): no transaction
//! maps a block before its data is written, and no block a read was planned on is handed out
//! again while that read is in flight.

use crate::error::{FsError, FsResult};
use crate::store::BlockStore;

/// Where a read's bytes are on disk (`Volume::plan_read`). While it lives, no commit ends:
/// blocks freed since it was planned are not handed out again under it.
#[derive(Debug, Default)]
pub struct ReadPlan {
    pub(super) len: usize,
    /// (disk offset, start, end in the output); the rest of the output is holes (zeros).
    pub(super) runs: Vec<(u64, usize, usize)>,
    pub(super) _token: InFlightToken,
}

impl ReadPlan {
    /// Read the planned bytes from `store`.
    pub fn execute<S: BlockStore + ?Sized>(&self, store: &S) -> FsResult<Vec<u8>> {
        let mut out = vec![0u8; self.len];
        for &(disk, s, e) in &self.runs {
            store.read_at(&mut out[s..e], disk)?;
        }
        Ok(out)
    }
}
/// Disk I/O planned with the engine and done without it. For writes of file data, a commit
/// waits until there are none, so no transaction makes blocks part of a file before their
/// data is written (ordered mode); for reads, the end of a commit waits, so no block a read
/// was planned on is handed out again (to another file) while it is being read.
#[derive(Default)]
pub(crate) struct DataInFlight {
    count: std::sync::Mutex<usize>,
    done: std::sync::Condvar,
}

impl DataInFlight {
    pub(super) fn begin(self: &std::sync::Arc<Self>) -> InFlightToken {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        InFlightToken(Some(self.clone()))
    }

    pub(super) fn wait_none(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = self.done.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One planned I/O's place among those in flight; dropping it ends it.
#[derive(Default)]
pub(super) struct InFlightToken(pub(super) Option<std::sync::Arc<DataInFlight>>);

impl std::fmt::Debug for InFlightToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlightToken")
    }
}

impl Drop for InFlightToken {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            *f.count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            f.done.notify_all();
        }
    }
}

pub(super) enum Piece {
    /// Bytes `start..end` of the data go to this disk offset.
    Data(u64, usize, usize),
    /// A freshly allocated block written partially: its whole image, zero-padded.
    Owned(u64, Vec<u8>),
}

/// A write whose blocks are allocated and mapped (`Volume::plan_write`): its data goes to the
/// store without the engine (`execute`), then `Volume::finish_write` sets the size and times.
pub struct WritePlan {
    pub(super) ino: u64,
    /// Its place among the inode's pending writes (`Volume::pending_writes`).
    pub(super) id: u64,
    pub(super) offset: u64,
    /// Bytes of the data that have blocks: all, unless space ran out part way or the
    /// transaction grew full (`rest`).
    pub(super) n: usize,
    pub(super) failed: Option<FsError>,
    /// Bytes past `n` left for another plan once the transaction is committed.
    pub(super) rest: usize,
    pub(super) pieces: Vec<Piece>,
    pub(super) token: InFlightToken,
    /// Set if `execute` failed: whatever settles the write then unmaps its fresh blocks.
    pub(super) io_failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl WritePlan {
    /// True if the plan maps only part of the data because its transaction grew full: once
    /// it is finished (and that transaction committed), the rest is planned from its end.
    pub fn stopped_for_commit(&self) -> bool {
        self.rest > 0
    }

    /// Write the data where the plan says; the commit that waits for it may then go on.
    pub fn execute<S: BlockStore + ?Sized>(&mut self, store: &S, data: &[u8]) -> FsResult<()> {
        let r = (|| {
            for p in &self.pieces {
                match p {
                    Piece::Data(disk, s, e) => store.write_at(&data[*s..*e], *disk)?,
                    Piece::Owned(disk, blk) => store.write_at(blk, *disk)?,
                }
            }
            Ok(())
        })();
        if r.is_err() {
            // Before the token goes: whoever waits for it then sees the failure.
            self.io_failed
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        drop(self.token.0.take().map(|f| InFlightToken(Some(f))));
        r
    }
}

/// A write planned and not yet finished (`Volume::plan_write`).
pub(super) struct PendingWrite {
    pub(super) id: u64,
    /// The end of its range: the size it grows the file to.
    pub(super) end: u64,
    /// Blocks allocated for it (logical, physical), holding garbage until its data is written.
    pub(super) fresh: Vec<(u64, u64)>,
    /// Its data failed to reach the store (`WritePlan::io_failed`).
    pub(super) io_failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Where a write's data goes (`Volume::map_for_write`).
pub(super) struct Mapping {
    pub(super) pieces: Vec<Piece>,
    /// Bytes of the data that have blocks: all, unless space ran out part way.
    pub(super) n: usize,
    pub(super) failed: Option<FsError>,
    /// Blocks allocated for it (logical, physical).
    pub(super) fresh: Vec<(u64, u64)>,
}
