//! A session's memory of the replies to its non-idempotent calls, by call id, so that a call
//! the client sends again after a reconnect (it cannot know whether the first copy ran) takes
//! effect once: a repeat gets the first reply instead of running twice.
//!
//! The client acknowledges the replies it holds (`Ack { below }`), which bounds the cache;
//! a hard cap bounds it even if a client never does.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Most replies one session keeps; beyond it the oldest are forgotten.
pub const MAX_ENTRIES: usize = 65_536;

/// What to do with a call that arrives, by what the cache knows of its id.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Never seen: run it.
    New,
    /// Running now, its reply still to come: drop this copy.
    Running,
    /// Done already: send this reply again.
    Done(Arc<Vec<u8>>),
    /// Below what the client acknowledged: a stale copy, drop it.
    Stale,
}

/// One session's kept replies, by call id, above the floor its client acknowledged.
#[derive(Debug, Default)]
pub struct ReplyCache {
    /// `None` while the call runs.
    entries: BTreeMap<u64, Option<Arc<Vec<u8>>>>,
    /// Every id below this was acknowledged by the client.
    floor: u64,
}

impl ReplyCache {
    /// Note call `id` as arriving; says what to do with it.
    pub fn begin(&mut self, id: u64) -> Seen {
        if id < self.floor {
            return Seen::Stale;
        }
        match self.entries.get(&id) {
            Some(None) => Seen::Running,
            Some(Some(frame)) => Seen::Done(frame.clone()),
            None => {
                self.entries.insert(id, None);
                self.trim();
                Seen::New
            }
        }
    }

    /// A cache holding `replies`, restored after a server restart. The floor starts at zero:
    /// a client resending a lock wait it was told was queued (the restarted server forgot
    /// it) must have it run, even below what it had acknowledged.
    pub fn restored(replies: impl IntoIterator<Item = (u64, Arc<Vec<u8>>)>) -> ReplyCache {
        ReplyCache {
            entries: replies.into_iter().map(|(id, f)| (id, Some(f))).collect(),
            floor: 0,
        }
    }

    /// Keep the reply of call `id`.
    pub fn finish(&mut self, id: u64, frame: Arc<Vec<u8>>) {
        if let Some(e) = self.entries.get_mut(&id) {
            *e = Some(frame);
        }
    }

    /// The client holds every reply below `below`.
    pub fn ack(&mut self, below: u64) {
        if below <= self.floor {
            return;
        }
        self.floor = below;
        let keep = self.entries.split_off(&below);
        // Calls still running stay: their replies are yet to be sent.
        let running: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, f)| f.is_none())
            .map(|(id, _)| *id)
            .collect();
        self.entries = keep;
        for id in running {
            self.entries.insert(id, None);
        }
    }

    /// Calls known: running or with a kept reply.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no call is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn trim(&mut self) {
        while self.entries.len() > MAX_ENTRIES {
            let Some((&id, _)) = self.entries.iter().find(|(_, f)| f.is_some()) else {
                return;
            };
            self.entries.remove(&id);
            self.floor = self.floor.max(id + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: u8) -> Arc<Vec<u8>> {
        Arc::new(vec![b])
    }

    #[test]
    fn a_repeat_gets_the_first_reply() {
        let mut c = ReplyCache::default();
        assert_eq!(c.begin(5), Seen::New);
        assert_eq!(c.begin(5), Seen::Running);
        c.finish(5, frame(1));
        assert_eq!(c.begin(5), Seen::Done(frame(1)));
    }

    #[test]
    fn acknowledged_replies_are_forgotten_and_their_repeats_dropped() {
        let mut c = ReplyCache::default();
        for id in 1..=10 {
            assert_eq!(c.begin(id), Seen::New);
            if id != 3 {
                c.finish(id, frame(id as u8));
            }
        }
        c.ack(8);
        // 3 is still running; 8, 9 and 10 are not yet acknowledged.
        assert_eq!(c.len(), 4);
        assert_eq!(c.begin(2), Seen::Stale);
        assert_eq!(c.begin(9), Seen::Done(frame(9)));
        c.finish(3, frame(3));
        assert_eq!(c.len(), 4);
        c.ack(11);
        assert!(c.is_empty());
    }

    #[test]
    fn the_cache_is_bounded_without_acks() {
        let mut c = ReplyCache::default();
        for id in 0..(MAX_ENTRIES as u64 + 100) {
            c.begin(id);
            c.finish(id, frame(0));
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert_eq!(c.begin(0), Seen::Stale);
    }
}
