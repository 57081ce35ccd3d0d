//! The log's records, how each is written to the file and read back, and the state they
//! rebuild (the sessions, their kept replies and opens).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use protocol::codec::{decode_body, encode_frame};
use serde::{Deserialize, Serialize};

use super::LoggedSession;

/// One change to what the log remembers, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Record {
    Started {
        session: u64,
        node_id: String,
        mount_id: u64,
        read_only: bool,
    },
    Ended {
        session: u64,
    },
    Reply {
        session: u64,
        id: u64,
        /// The journal transaction the call's changes went into.
        seq: u64,
        frame: Vec<u8>,
    },
    /// The client holds every reply below `below`.
    Acked {
        session: u64,
        below: u64,
    },
    /// The session's secret (`auth::SessionSecret`), written right after `Started`.
    Secret {
        session: u64,
        secret: Vec<u8>,
    },
    /// The session opened file `ino` (once more).
    Opened {
        session: u64,
        ino: u64,
    },
    /// The session closed one of its opens of `ino`.
    Released {
        session: u64,
        ino: u64,
    },
    /// The server stopped cleanly: everything before was committed, nothing is missing.
    Stopped,
    /// The session mounts the export rooted at `root`, confined to it (written right after
    /// `Secret`; a session without one mounts the whole volume).
    Export {
        session: u64,
        root: u64,
    },
}

/// What the records read so far add up to.
#[derive(Default)]
pub(super) struct State {
    pub(super) sessions: HashMap<u64, LoggedSession>,
    /// The last record read was `Stopped`.
    pub(super) stopped: bool,
}

impl State {
    /// `r` applied.
    pub(super) fn apply(&mut self, r: Record) {
        self.stopped = matches!(r, Record::Stopped);
        match r {
            Record::Started {
                session,
                node_id,
                mount_id,
                read_only,
            } => {
                self.sessions.insert(
                    session,
                    LoggedSession {
                        node_id,
                        mount_id,
                        read_only,
                        secret: Vec::new(),
                        export: 0,
                        replies: BTreeMap::new(),
                        opens: BTreeMap::new(),
                    },
                );
            }
            Record::Ended { session } => {
                self.sessions.remove(&session);
            }
            Record::Reply {
                session,
                id,
                seq,
                frame,
            } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.replies.insert(id, (seq, Arc::new(frame)));
                }
            }
            Record::Acked { session, below } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.replies = s.replies.split_off(&below);
                }
            }
            Record::Secret { session, secret } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.secret = secret;
                }
            }
            Record::Opened { session, ino } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    *s.opens.entry(ino).or_insert(0) += 1;
                }
            }
            Record::Released { session, ino } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    if let Some(n) = s.opens.get_mut(&ino) {
                        *n -= 1;
                        if *n == 0 {
                            s.opens.remove(&ino);
                        }
                    }
                }
            }
            Record::Stopped => {}
            Record::Export { session, root } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.export = root;
                }
            }
        }
    }

    /// Records that rebuild this state.
    pub(super) fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        let mut ids: Vec<&u64> = self.sessions.keys().collect();
        ids.sort();
        for id in ids {
            let s = &self.sessions[id];
            out.push(Record::Started {
                session: *id,
                node_id: s.node_id.clone(),
                mount_id: s.mount_id,
                read_only: s.read_only,
            });
            out.push(Record::Secret {
                session: *id,
                secret: s.secret.clone(),
            });
            if s.export != 0 {
                out.push(Record::Export {
                    session: *id,
                    root: s.export,
                });
            }
            for (ino, n) in &s.opens {
                for _ in 0..*n {
                    out.push(Record::Opened {
                        session: *id,
                        ino: *ino,
                    });
                }
            }
            for (call, (seq, frame)) in &s.replies {
                out.push(Record::Reply {
                    session: *id,
                    id: *call,
                    seq: *seq,
                    frame: frame.to_vec(),
                });
            }
        }
        out
    }
}

/// `r` appended to `out` as the file holds it: its frame's crc32c, then the frame.
pub(super) fn encode(r: &Record, out: &mut Vec<u8>) {
    // Records are small and their fields plain: encoding cannot fail.
    let frame = encode_frame(r, &[]).unwrap_or_default();
    out.extend_from_slice(&crc32c::crc32c(&frame).to_le_bytes());
    out.extend_from_slice(&frame);
}

/// Decode records from `data` until the end or the first torn or damaged one.
pub(super) fn decode_all(mut data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let crc = u32::from_le_bytes(data[0..4].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(data[4..8].try_into().unwrap_or_default()) as usize;
        let Some(frame) = data.get(4..8 + len) else {
            break;
        };
        if crc32c::crc32c(frame) != crc {
            break;
        }
        match decode_body::<Record>(&frame[4..]) {
            Ok((r, _)) => out.push(r),
            Err(_) => break,
        }
        data = &data[8 + len..];
    }
    out
}
