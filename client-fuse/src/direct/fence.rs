//! Self-fencing: a direct mount on a volume nothing can fence (a local image) keeps off the
//! volume's blocks once it may have lost its layouts. The server takes a mount's layouts
//! when a recall of them has waited a whole lease, and all of them when the mount's session
//! ends (a lease without a word from it); the blocks can then go to another file. So before
//! each read or write on the volume through a layout, the mount checks that
//! - the layout was given by the session and server incarnation it is talking to (a new
//!   session holds none of the old one's layouts; a restarted server forgot every
//!   reservation);
//! - a call it made less than half a lease ago has been answered (`renewed_ago`): the
//!   server cannot have ended its session yet;
//! - no recall of the file has been waiting for its answer half a lease or longer, timed
//!   from the earliest moment the server may have begun it (`link::Recall::since`), not
//!   from its arrival: a recall held up on its way (a slow network, one way only) comes
//!   with the answers sent after it, whose calls are fresh; and the first push of it to
//!   come may be a later one, the earlier dropped.
//!
//! Otherwise the read or write goes through the server (as a remote mount's does) and the
//! writes made through the lost layouts are reported lost at their commit. Half a lease
//! leaves the other half for the messages' way and for the moment between this check and
//! the system call: a stall of more than that in between is the one case that escapes it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::backend::Backend;
use crate::remote::RemoteBackend;

/// The recalls of this mount's layouts not yet answered, by file, since the earliest moment
/// the server may have begun one.
#[derive(Default)]
pub(super) struct Fence {
    recalled: Mutex<HashMap<u64, Instant>>,
}

impl Fence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.recalled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server recalls this mount's layouts on `ino`, a recall it began no sooner than
    /// `since` (again, perhaps: the earliest start counts).
    pub(super) fn recalled(&self, ino: u64, since: Instant) {
        let mut recalled = self.lock();
        let at = recalled.entry(ino).or_insert(since);
        *at = (*at).min(since);
    }

    /// The recall of `ino`'s layouts was answered (they were given back).
    pub(super) fn answered(&self, ino: u64) {
        self.lock().remove(&ino);
    }

    /// Why layouts on `ino` given in `given` (the server's incarnation and the sessions
    /// lost, as `pending::Writes` has them) may no longer be used, if they may not.
    pub(super) fn lost(
        &self,
        remote: &RemoteBackend,
        ino: u64,
        given: (u64, u64),
    ) -> Option<String> {
        if (remote.incarnation(), remote.lock_epoch()) != given {
            return Some("they were given in an earlier session or by an earlier server".into());
        }
        let half = remote.lease() / 2;
        let quiet = remote.renewed_ago();
        if quiet >= half {
            return Some(format!(
                "the server has answered no call made in the last {quiet:?}"
            ));
        }
        let waiting = self.lock().get(&ino).map(Instant::elapsed);
        match waiting {
            Some(w) if w >= half => Some(format!("a recall of them has waited {w:?}")),
            _ => None,
        }
    }
}
