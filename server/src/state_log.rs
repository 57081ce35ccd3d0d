//! The server's durable memory of its sessions, kept beside the volume (a file beside a local
//! image, an object beside a RADOS one: `place`), so the next server reads it: which
//! sessions exist, and the replies to their calls that changed the volume. A server restarted
//! after a crash restores those sessions: a client resuming one gets the replies it missed
//! (a create or an append whose reply was lost with the crash is not run a second time), and
//! it may reclaim its locks within the grace period.
//!
//! Ordering is what makes this honest. A reply is recorded under the engine's lock together
//! with the journal transaction its changes went into (`Volume::next_seq`), and the log is
//! written and flushed before every commit (the volume's durability hook). At restart, only
//! replies whose transaction turned out durable are kept: a call whose changes died with the
//! crash runs again when its client sends it again, and one whose changes survived does not.
//!
//! Format: `RWXSLOG1`, the volume id (u64 LE), then records, each `crc32c (u32 LE)` of a
//! frame followed by the frame (the wire codec's, its length prefix big-endian). A torn or damaged tail ends the log.

use locks::SessionId;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use place::COMPACT_AT;
pub use place::{FileLog, LogPlace};
use record::{decode_all, encode, Record, State};

mod place;
mod record;

const MAGIC: &[u8; 8] = b"RWXSLOG1";

/// A session as the log remembers it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoggedSession {
    /// As in `SessionInfo`.
    pub node_id: String,
    /// As in `SessionInfo`.
    pub mount_id: u64,
    /// As in `SessionInfo`.
    pub read_only: bool,
    /// What its client must show to resume it (empty from a log that had none).
    pub secret: Vec<u8>,
    /// As in `SessionInfo`.
    pub export: u64,
    /// Kept replies by call id, with their transaction.
    pub replies: BTreeMap<u64, (u64, Arc<Vec<u8>>)>,
    /// Files the session holds open: how many opens of each inode.
    pub opens: BTreeMap<u64, u32>,
}

/// What records are made under: taken (briefly) by every call that changes the volume, with
/// the engine's lock held, so never held across disk I/O.
struct Inner {
    /// Records not yet handed to the file.
    buf: Vec<u8>,
    state: State,
}

/// The log's place, written and flushed by one sync at a time without `Inner`'s lock: a sync
/// takes the records made so far, and calls go on recording the next ones meanwhile. Syncs
/// that queue up behind one find their records already written by it (a group commit).
struct Io {
    /// Bytes in the log.
    size: u64,
}

/// The session log of one volume: records made under the engine's lock, written and flushed
/// before every commit (see the module's ordering).
pub struct StateLog {
    place: Arc<dyn LogPlace>,
    volume_id: u64,
    inner: Mutex<Inner>,
    io: Mutex<Io>,
    /// Set once the log could not be written: it stops recording (the volume goes on; the
    /// log's promise — a repeat after a crash runs once — no longer holds until restart).
    broken: AtomicBool,
    /// The server before this one stopped cleanly (`stopped`): every kept reply and open
    /// the log restored is exact, none was lost.
    clean: bool,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `records` as a complete log of volume `volume_id`.
fn whole(volume_id: u64, records: &[Record]) -> Vec<u8> {
    let mut data = Vec::with_capacity(16);
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&volume_id.to_le_bytes());
    for r in records {
        encode(r, &mut data);
    }
    data
}

/// What the log in `place` holds for the volume `volume_id`: an empty state if there is no
/// log, `None` if it is another volume's (or not a session log).
fn load(place: &dyn LogPlace, volume_id: u64) -> std::io::Result<Option<State>> {
    let mut state = State::default();
    let data = place.read()?;
    if data.is_empty() {
        return Ok(Some(state));
    }
    if data.len() < 16 || &data[0..8] != MAGIC || data[8..16] != volume_id.to_le_bytes() {
        return Ok(None);
    }
    for r in decode_all(&data[16..]) {
        state.apply(r);
    }
    Ok(Some(state))
}

/// The sessions the log in `place` keeps for the volume `volume_id` (those a next start
/// restores, whose clients may come back), read without a change to it: for `rwxfs fsck`,
/// which tells the files they hold open from lost ones. `None` if the log is another
/// volume's.
pub fn sessions_kept(
    place: &dyn LogPlace,
    volume_id: u64,
) -> std::io::Result<Option<HashMap<u64, LoggedSession>>> {
    Ok(load(place, volume_id)?.map(|s| s.sessions))
}

impl StateLog {
    /// Open the log in the file at `path` (see `open_in`).
    pub fn open(
        path: &Path,
        volume_id: u64,
        recovered_seq: u64,
    ) -> std::io::Result<(StateLog, HashMap<u64, LoggedSession>)> {
        StateLog::open_in(Arc::new(FileLog::new(path)), volume_id, recovered_seq)
    }

    /// Open the log in `place` for the volume `volume_id`, whose newest durable transaction
    /// at open was `recovered_seq`. Returns the log and the sessions it restores (with only
    /// the replies whose changes survived). A log of another volume, or none, restores nothing.
    pub fn open_in(
        place: Arc<dyn LogPlace>,
        volume_id: u64,
        recovered_seq: u64,
    ) -> std::io::Result<(StateLog, HashMap<u64, LoggedSession>)> {
        let mut state = load(place.as_ref(), volume_id)?.unwrap_or_else(|| {
            tracing::warn!(
                "{}: not this volume's session log; starting without it",
                place.describe()
            );
            State::default()
        });
        let clean = std::mem::take(&mut state.stopped);
        let mut dropped = 0usize;
        for s in state.sessions.values_mut() {
            let before = s.replies.len();
            s.replies.retain(|_, (seq, _)| *seq <= recovered_seq);
            dropped += before - s.replies.len();
        }
        if dropped > 0 {
            tracing::info!("{dropped} kept replies belonged to changes lost in the crash");
        }
        let restored = state.sessions.clone();
        // Start the log over: replies dropped here must not come back to life when the
        // volume's transaction numbers pass theirs again.
        let fresh = whole(volume_id, &state.records());
        place.replace(&fresh)?;
        Ok((
            StateLog {
                place,
                volume_id,
                inner: Mutex::new(Inner {
                    buf: Vec::new(),
                    state,
                }),
                io: Mutex::new(Io {
                    size: fresh.len() as u64,
                }),
                broken: AtomicBool::new(false),
                clean,
            },
            restored,
        ))
    }

    fn record(&self, r: Record) {
        let mut i = relock(&self.inner);
        if !self.broken.load(Ordering::Relaxed) {
            encode(&r, &mut i.buf);
        }
        i.state.apply(r);
    }

    /// Session `session` began, with what it is, its secret and its export (0: the whole
    /// volume).
    pub fn started(
        &self,
        session: SessionId,
        node_id: &str,
        mount_id: u64,
        read_only: bool,
        secret: &[u8],
        export: u64,
    ) {
        let session = session.get();
        self.record(Record::Started {
            session,
            node_id: node_id.to_string(),
            mount_id,
            read_only,
        });
        self.record(Record::Secret {
            session,
            secret: secret.to_vec(),
        });
        if export != 0 {
            self.record(Record::Export {
                session,
                root: export,
            });
        }
    }

    /// Session `session` ended: nothing of it is restored any more.
    pub fn ended(&self, session: SessionId) {
        let session = session.get();
        self.record(Record::Ended { session });
    }

    /// The reply `frame` to call `id`, whose changes went into transaction `seq`. Must be
    /// called with the engine's lock still held from the call.
    pub fn reply(&self, session: SessionId, id: u64, seq: u64, frame: &[u8]) {
        let session = session.get();
        self.record(Record::Reply {
            session,
            id,
            seq,
            frame: frame.to_vec(),
        });
    }

    /// Session `session` opened `ino`. Recorded with the engine's lock held from the open.
    pub fn opened(&self, session: SessionId, ino: u64) {
        let session = session.get();
        self.record(Record::Opened { session, ino });
    }

    /// Session `session` closed one of its opens of `ino`, under the engine's lock.
    pub fn released(&self, session: SessionId, ino: u64) {
        let session = session.get();
        self.record(Record::Released { session, ino });
    }

    /// The server is stopping and committed everything: say so, durably, last.
    pub fn stopped(&self) -> std::io::Result<()> {
        self.record(Record::Stopped);
        self.sync()
    }

    /// True if the server before this one stopped cleanly (see `stopped`).
    pub fn clean(&self) -> bool {
        self.clean
    }

    /// The client of `session` holds every reply below `below`: the log forgets them.
    pub fn acked(&self, session: SessionId, below: u64) {
        let session = session.get();
        let mut i = relock(&self.inner);
        let known = i
            .state
            .sessions
            .get(&session)
            .is_some_and(|s| s.replies.first_key_value().is_some_and(|(k, _)| *k < below));
        if known {
            let r = Record::Acked { session, below };
            if !self.broken.load(Ordering::Relaxed) {
                encode(&r, &mut i.buf);
            }
            i.state.apply(r);
        }
    }

    /// Write out and flush everything recorded so far; rewrite the log if it grew large.
    /// Records go on being made meanwhile (only the file is held across the I/O).
    /// A log that cannot be written does not stop the volume's commit: it is reported once
    /// and recording stops (see `broken`).
    pub fn sync(&self) -> std::io::Result<()> {
        let mut io = relock(&self.io);
        if self.broken.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Err(e) = self.write_out(&mut io) {
            tracing::error!(
                "session log {}: {e}; no longer recorded: calls repeated after a server crash \
                 may run twice until the server restarts",
                self.place.describe()
            );
            self.broken.store(true, Ordering::Relaxed);
            relock(&self.inner).buf = Vec::new();
        }
        Ok(())
    }

    fn write_out(&self, io: &mut Io) -> std::io::Result<()> {
        let (buf, live) = {
            let mut i = relock(&self.inner);
            let buf = std::mem::take(&mut i.buf);
            // Past the compaction size, what is live replaces the file (and `buf`, which it
            // includes): taken in the same breath, so no record falls between the two.
            let live = (io.size + buf.len() as u64 > COMPACT_AT).then(|| i.state.records());
            (buf, live)
        };
        if let Some(records) = live {
            let fresh = whole(self.volume_id, &records);
            match self.place.replace(&fresh) {
                Ok(()) => {
                    io.size = fresh.len() as u64;
                    return Ok(());
                }
                // No room for a second copy: append to this one while its reserve lasts.
                Err(e) => tracing::warn!("session log not compacted: {e}"),
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.place.append(&buf)?;
        io.size += buf.len() as u64;
        Ok(())
    }

    /// Sessions the log holds now.
    pub fn sessions(&self) -> usize {
        relock(&self.inner).state.sessions.len()
    }
}

#[cfg(test)]
mod tests;
