//! The commit policy, in one place: when an operation may commit (`after_op`, `step`), how a
//! commit is made (`commit`, or `prepare_commit` / `finish_commit` around a journal write
//! done without the engine), and what it waits for. Invariants: commits never overlap;
//! behind `SharedVolume` no operation commits (it only says one is due, `commit_urgent`, or
//! stops with `Again` at a step boundary); a transaction never outgrows the journal; blocks
//! freed by a transaction stay quarantined until it is durable and no read planned before it
//! is in flight.

use std::time::{Duration, Instant};

use crate::attr::Ino;
use crate::cache::PreparedCommit;
use crate::error::{FsError, FsResult};
use crate::journal;
use crate::store::BlockStore;

use super::Volume;

/// Told, after every commit that succeeded, the newest transaction now durable.
pub type CommitHook = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// Something that must be durable before any later transaction is: called at every commit,
/// before the journal write; an error fails the commit.
pub type DurabilityHook = std::sync::Arc<dyn Fn() -> FsResult<()> + Send + Sync>;

impl<S: BlockStore> Volume<S> {
    /// The end of an operation: used alone, the engine commits once half the journal is
    /// pending; behind `SharedVolume`, which commits outside the engine's lock, it only lets
    /// `commit_urgent` say so (a commit here could overlap the one in flight).
    pub(super) fn after_op(&mut self) -> FsResult<()> {
        if self.commit_urgent() && !self.commits_outside {
            self.commit()?;
        }
        Ok(())
    }

    /// A long operation's step boundary, where it has left the volume consistent: once a
    /// commit is due, the engine used alone commits and goes on; behind `SharedVolume` it
    /// stops with `Again`, and `SharedVolume::run` commits and calls the operation again,
    /// which goes on from where it stopped. No transaction outgrows the journal, so every
    /// one is atomic.
    pub(super) fn step(&mut self) -> FsResult<()> {
        if !self.commit_urgent() {
            return Ok(());
        }
        if self.commits_outside {
            return Err(FsError::Again);
        }
        self.commit()
    }

    /// Make everything done so far durable (one journal transaction and a flush).
    /// Behind `SharedVolume`, use its `commit`: this one fails while that one is in flight.
    pub fn commit(&mut self) -> FsResult<()> {
        let p = self.prepare_commit()?;
        let written = match &self.durability_hook {
            Some(hook) => hook().and_then(|_| p.write()),
            None => p.write(),
        };
        self.finish_commit(p, written)
    }

    /// The first half of a commit: take what is pending as one transaction, to be written
    /// (`PreparedCommit::write`) while other operations go on, then ended by `finish_commit`.
    /// `SharedVolume` does this dance; commits must not overlap (a second one is refused).
    pub fn prepare_commit(&mut self) -> FsResult<PreparedCommit<S>> {
        // Planned writes run their data I/O without the engine (no new one can start while
        // the caller holds it): wait for them, so this transaction maps no unwritten block.
        self.data_in_flight.wait_none();
        self.last_commit = Instant::now();
        let p = self.m.prepare_commit()?;
        // The transaction just taken is the newest one once it is written.
        self.commit_upto = self.m.next_seq() - 1;
        Ok(p)
    }

    /// The end of a commit. The blocks it frees become reusable: it first waits for reads in
    /// flight (planned before, perhaps on those blocks; none can start while the caller holds
    /// the engine).
    pub fn finish_commit(&mut self, p: PreparedCommit<S>, written: FsResult<()>) -> FsResult<()> {
        self.reads_in_flight.wait_none();
        self.m.finish_commit(p, written)?;
        if let Some(hook) = &self.commit_hook {
            hook(self.commit_upto);
        }
        Ok(())
    }

    /// More than half the journal is pending: commit before the next operation (it could
    /// not fit otherwise). Behind `SharedVolume`, which commits outside the engine's lock.
    pub fn commit_urgent(&self) -> bool {
        self.m.dirty_count() > self.step_limit()
    }

    /// Metadata blocks pending past which a commit is due: half the journal, so that the
    /// step that crosses it (never more than a few blocks) still fits.
    pub(super) fn step_limit(&self) -> usize {
        journal::capacity(&self.sb.geometry) / 2
    }

    /// From now on commits are the caller's alone (`SharedVolume`): operations never start one.
    pub(crate) fn commit_outside(&mut self) {
        self.commits_outside = true;
    }

    /// True if something is pending and the last commit is older than `interval`.
    pub fn commit_due(&self, interval: Duration) -> bool {
        self.m.dirty_count() > 0 && self.last_commit.elapsed() >= interval
    }

    /// Commit if the last commit is older than `interval` and something is pending.
    pub fn commit_if_older(&mut self, interval: Duration) -> FsResult<bool> {
        if self.m.dirty_count() > 0 && self.last_commit.elapsed() >= interval {
            self.commit()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// fsync: file data and all metadata durable.
    pub fn fsync(&mut self, ino: Ino) -> FsResult<()> {
        let ino = ino.get();
        self.get(ino)?;
        self.commit()
    }

    /// The sequence number of the transaction the changes made now will be committed in
    /// (or a later one, if that commit fails and is retried).
    pub fn next_seq(&self) -> u64 {
        self.m.next_seq()
    }

    /// The newest transaction that was durable when the volume was opened: the changes
    /// made before the last stop or crash in transactions up to this one survived it.
    pub fn recovered_seq(&self) -> u64 {
        self.recovered_seq
    }

    /// Have `hook` run before every commit's journal write from now on.
    pub fn set_durability_hook(&mut self, hook: DurabilityHook) {
        self.durability_hook = Some(hook);
    }

    /// The hook `set_durability_hook` set, if any.
    pub fn durability_hook(&self) -> Option<DurabilityHook> {
        self.durability_hook.clone()
    }

    /// Have `hook` told the newest durable transaction after every commit from now on.
    pub fn set_commit_hook(&mut self, hook: CommitHook) {
        self.commit_hook = Some(hook);
    }

    /// The hook `set_commit_hook` set, if any.
    pub fn commit_hook(&self) -> Option<CommitHook> {
        self.commit_hook.clone()
    }

    /// Transactions committed since open.
    pub fn commits(&self) -> u64 {
        self.m.commits
    }

    /// Blocks freed by changes not yet committed: free again once a commit ends.
    pub fn quarantined_blocks(&self) -> usize {
        self.m.quarantined()
    }

    /// Metadata blocks changed and not yet committed.
    pub fn pending_blocks(&self) -> usize {
        self.m.dirty_count()
    }
}
