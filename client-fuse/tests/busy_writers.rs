//! Calls on a file that writers keep writing, on a direct mount's backend (without FUSE,
//! against the real server): each waits for the writes answered before it, never for those
//! answered after it began, which busy writers would never let end.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use client_fuse::backend::{Backend, WriteHow};
use support::{client, direct, Place, Server};
use volume::layout::ROOT_INO;

/// Writers of one file that go on until stopped (or dropped): four, each at `RANGES` MiB
/// of its own in turn (a write waits only for the one before it at its range). Together
/// they have more on their way than a mount lets be at once (32 MiB): a write waits for
/// room, and takes it as soon as one ends, so the file's writes on their way never all end.
struct Busy {
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<()>>,
    /// The end of each write, once answered.
    wrote: Receiver<u64>,
}

/// Ranges of 1 MiB each writer writes in turn.
const RANGES: u64 = 12;

impl Busy {
    /// Start them on `ino`; back once they have had 32 writes answered.
    fn start<B: Backend>(b: &Arc<B>, ino: u64) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, wrote) = channel();
        let writers = (0..4u64)
            .map(|w| {
                let (b, stop, tx) = (b.clone(), stop.clone(), tx.clone());
                std::thread::spawn(move || {
                    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
                    for k in 0u64.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let at = (w * RANGES + k % RANGES) << 20;
                        b.write(ino, at, &chunk, WriteHow::default())
                            .expect("write");
                        let _ = tx.send(at + (1 << 20));
                    }
                })
            })
            .collect();
        let busy = Busy {
            stop,
            writers,
            wrote,
        };
        for _ in 0..32 {
            busy.wrote
                .recv_timeout(Duration::from_secs(60))
                .expect("a write answered");
        }
        busy
    }

    /// The end of the furthest write answered so far.
    fn answered_end(&self) -> u64 {
        self.wrote.try_iter().max().unwrap_or(0)
    }

    /// `call` on `b`, on a thread of its own while the writers go on: its answer, once it
    /// comes within a minute (then the writers stop).
    fn answer<B: Backend, T: Send + 'static>(
        mut self,
        b: &Arc<B>,
        call: impl FnOnce(&B) -> T + Send + 'static,
    ) -> T {
        let (tx, answered) = channel();
        let caller = {
            let b = b.clone();
            std::thread::spawn(move || {
                let _ = tx.send(call(&b));
            })
        };
        let r = answered.recv_timeout(Duration::from_secs(60));
        self.end();
        caller.join().expect("the calling thread");
        r.expect("answered only once the writers stopped")
    }

    fn end(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.writers
            .drain(..)
            .for_each(|w| w.join().expect("writer"));
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.end();
    }
}

fn create(c: &impl Backend, name: &str) -> u64 {
    c.create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)
        .expect("create")
        .ino
}

/// Attributes answered while writers keep writing the file are raised to the end of the
/// writes begun before the answer came, not held back until the writers stop.
#[test]
fn a_lookup_is_answered_while_a_writer_keeps_writing_the_file() {
    let place = Place::sized(256 << 20);
    let server = Server::start(&place, "127.0.0.1:0");
    let d = direct(&place, &server.addr.to_string(), "d");
    let ino = create(&*d, "busy");
    let size = Busy::start(&d, ino).answer(&d, |d| d.lookup(ROOT_INO, b"busy").map(|a| a.size));
    assert!(size.expect("lookup") >= 1 << 20);
    d.fsync(ino).expect("fsync");
}

/// A flush (at every close) and an fsync while writers keep writing the file are answered,
/// once the writes answered before them are on the volume and committed: another client
/// sees the file at least as long as those writes made it.
#[test]
fn a_flush_and_an_fsync_are_answered_while_writers_keep_writing_the_file() {
    let place = Place::sized(256 << 20);
    let server = Server::start(&place, "127.0.0.1:0");
    let d = direct(&place, &server.addr.to_string(), "d");
    let other = client(&server.addr.to_string(), "other");
    for (name, fsync) in [("flushed", false), ("fsynced", true)] {
        let ino = create(&*d, name);
        let busy = Busy::start(&d, ino);
        let end = busy.answered_end();
        let r = busy.answer(&d, move |d| match fsync {
            true => d.fsync(ino),
            false => d.flush(ino),
        });
        r.unwrap_or_else(|e| panic!("{name}: {e}"));
        let size = other.getattr(ino).expect("getattr").size;
        assert!(size >= end, "{name}: {size} bytes, {end} written before");
    }
}
