//! `SharedVolume`: operations proceed while a commit is on its way to disk, and what they do
//! meanwhile is neither lost nor allowed to reuse blocks the commit still needs.

mod common;
use common::*;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use volume::Ino;
use volume::{BlockStore, MemStore, SharedVolume, Volume};

const ROOT: Ino = Ino::ROOT;
/// File data of this byte is what a store gating writes holds back.
const GATED_BYTE: u8 = 0x77;

/// A store whose flushes wait while the gate is closed: a disk that is slow to make writes
/// durable, held slow for as long as a test needs.
struct GatedStore {
    inner: Arc<MemStore>,
    closed: Mutex<bool>,
    opened: Condvar,
    waiting: AtomicBool,
    /// Reads of data blocks wait at the gate too.
    gate_reads: AtomicBool,
    /// Writes of file data made of `GATED_BYTE` wait at the gate, instead of flushes.
    gate_writes: AtomicBool,
}

impl GatedStore {
    fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }
    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }
}

impl GatedStore {
    fn wait_gate(&self) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            self.waiting.store(true, Ordering::SeqCst);
            closed = self.opened.wait(closed).unwrap();
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}

impl BlockStore for GatedStore {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if self.gate_reads.load(Ordering::SeqCst) && buf.len() > 4096 {
            self.wait_gate();
        }
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.gate_writes.load(Ordering::SeqCst) && buf.iter().all(|&b| b == GATED_BYTE) {
            self.wait_gate();
        }
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        if !self.gate_reads.load(Ordering::SeqCst) && !self.gate_writes.load(Ordering::SeqCst) {
            self.wait_gate();
        }
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

#[test]
fn operations_proceed_while_a_commit_waits_for_the_disk() {
    let mem = fresh(64 * MIB);
    let store = Arc::new(GatedStore {
        inner: mem.clone(),
        closed: Mutex::new(false),
        opened: Condvar::new(),
        waiting: AtomicBool::new(false),
        gate_reads: AtomicBool::new(false),
        gate_writes: AtomicBool::new(false),
    });
    let vol = Arc::new(SharedVolume::new(Volume::open(store.clone()).unwrap()));
    // Committed state: a file with data, which is then deleted (its blocks freed) so that the
    // commit in flight carries the free.
    let old = vol.with(|v| {
        let a = v.create(ROOT, b"old", 0o644, 0, 0).unwrap();
        v.write(a.ino, 0, &vec![0xAA; 64 * 1024]).unwrap();
        a.ino
    });
    vol.commit().unwrap();
    vol.with(|v| v.unlink(ROOT, b"old")).unwrap();
    let _ = old;

    store.close();
    let committer = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.commit())
    };
    while !store.waiting.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // The commit is stuck on the disk; the engine still answers and changes.
    let new = vol.with(|v| {
        let a = v.create(ROOT, b"new", 0o644, 0, 0).unwrap();
        v.write(a.ino, 0, &vec![0x55; 64 * 1024]).unwrap();
        assert!(matches!(
            v.lookup(ROOT, b"old"),
            Err(volume::FsError::NotFound)
        ));
        a.ino
    });
    assert!(
        !committer.is_finished(),
        "the commit did not wait for the gate"
    );
    store.open();
    committer.join().unwrap().unwrap();
    // Until that commit finished, the freed blocks of "old" were off limits: "new" must not
    // have been written over them (a crash before the commit would have exposed it).
    vol.commit().unwrap();
    drop(vol);
    assert_clean(&mem);
    let mut v = open(&mem);
    assert_eq!(v.read(new, 0, 1 << 20).unwrap(), vec![0x55; 64 * 1024]);
    assert!(v.lookup(ROOT, b"old").is_err());
}

#[test]
fn a_crash_after_commits_overlapping_operations_keeps_only_whole_files() {
    // Commits run back to back while four threads create, write and delete; then the process
    // "crashes" (the engine is dropped with work pending). The image reopens clean, and every
    // file it holds has exactly the content written with its creation.
    let mem = fresh(64 * MIB);
    let vol = Arc::new(SharedVolume::new(open(&mem)));
    let stop = Arc::new(AtomicBool::new(false));
    let committer = {
        let (vol, stop) = (vol.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                vol.commit().unwrap();
            }
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let vol = vol.clone();
            std::thread::spawn(move || {
                for j in 0..200 {
                    let name = format!("w{w}-{j}");
                    vol.with(|v| {
                        let a = v.create(ROOT, name.as_bytes(), 0o644, 0, 0)?;
                        v.write(a.ino, 0, &vec![(w * 31 + j) as u8; 3000 + j * 7])?;
                        if j % 3 == 0 {
                            v.unlink(ROOT, name.as_bytes())?;
                        }
                        Ok::<_, volume::FsError>(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    committer.join().unwrap();
    // The last files, written after the last commit, exist only in memory.
    vol.with(|v| {
        let a = v.create(ROOT, b"uncommitted", 0o644, 0, 0)?;
        v.write(a.ino, 0, b"gone")
    })
    .unwrap();
    drop(vol);
    assert_clean(&mem);
    let mut v = open(&mem);
    let mut present = 0;
    for w in 0..4usize {
        for j in 0..200usize {
            let r = v.lookup(ROOT, format!("w{w}-{j}").as_bytes());
            if j % 3 == 0 {
                assert!(r.is_err(), "w{w}-{j} was deleted with its creation");
            } else if let Ok(a) = r {
                present += 1;
                let data = v.read(a.ino, 0, 1 << 20).unwrap();
                assert_eq!(data, vec![(w * 31 + j) as u8; 3000 + j * 7], "w{w}-{j}");
            }
        }
    }
    assert!(present > 0, "no commit finished during the run");
    assert!(v.lookup(ROOT, b"uncommitted").is_err());
}

#[test]
fn reads_wait_for_the_disk_without_the_engine_and_hold_back_block_reuse() {
    let mem = fresh(64 * MIB);
    let store = Arc::new(GatedStore {
        inner: mem.clone(),
        closed: Mutex::new(false),
        opened: Condvar::new(),
        waiting: AtomicBool::new(false),
        gate_reads: AtomicBool::new(true),
        gate_writes: AtomicBool::new(false),
    });
    let vol = Arc::new(SharedVolume::new(Volume::open(store.clone()).unwrap()));
    let data = vec![0x3C; 256 * 1024];
    let f = vol
        .with(|v| {
            let a = v.create(ROOT, b"f", 0o644, 0, 0)?;
            v.write(a.ino, 0, &data).map(|_| a.ino)
        })
        .unwrap();
    vol.commit().unwrap();
    store.close();
    let reader = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.read(f, 0, 1 << 20))
    };
    while !store.waiting.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // The read waits for the disk; the engine serves others meanwhile.
    let other = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.with(|v| v.create(ROOT, b"g", 0o644, 0, 0).map(|_| ())))
    };
    let t = std::time::Instant::now();
    while !other.is_finished() {
        if t.elapsed() > Duration::from_secs(5) {
            store.open();
            panic!("another operation waited for the read's disk I/O");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    other.join().unwrap().unwrap();
    // Freeing the read's blocks and committing: the commit may not end (and hand the blocks
    // out again) while the read is still reading them.
    vol.with(|v| v.unlink(ROOT, b"f")).unwrap();
    let committer = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.commit())
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !committer.is_finished(),
        "the commit ended under a read in flight"
    );
    store.open();
    assert_eq!(reader.join().unwrap().unwrap(), data);
    committer.join().unwrap().unwrap();
    drop(vol);
    assert_clean(&mem);
}

#[test]
fn a_data_write_runs_without_the_engine_and_holds_the_next_commit_back() {
    let mem = fresh(64 * MIB);
    let store = Arc::new(GatedStore {
        inner: mem.clone(),
        closed: Mutex::new(false),
        opened: Condvar::new(),
        waiting: AtomicBool::new(false),
        gate_reads: AtomicBool::new(false),
        gate_writes: AtomicBool::new(true),
    });
    let vol = Arc::new(SharedVolume::new(Volume::open(store.clone()).unwrap()));
    let f = vol.with(|v| v.create(ROOT, b"f", 0o644, 0, 0)).unwrap().ino;
    vol.commit().unwrap();
    store.close();
    let writer = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.write(f, 0, &vec![GATED_BYTE; 64 * 1024], |_, _| Ok(())))
    };
    while !store.waiting.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // The data is on its way to a slow disk; the engine is free for others.
    let g = vol.with(|v| v.create(ROOT, b"g", 0o644, 0, 0)).unwrap().ino;
    // A commit now would journal f's new blocks before their data is written: it waits.
    let committer = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.commit())
    };
    std::thread::sleep(Duration::from_millis(100));
    let went_ahead = committer.is_finished();
    store.open();
    assert!(!went_ahead, "a commit went ahead of data in flight");
    assert_eq!(writer.join().unwrap().unwrap(), 64 * 1024);
    committer.join().unwrap().unwrap();
    vol.commit().unwrap();
    drop(vol);
    assert_clean(&mem);
    let mut v = open(&mem);
    assert_eq!(v.read(f, 0, 1 << 20).unwrap(), vec![GATED_BYTE; 64 * 1024]);
    assert_eq!(v.getattr(g).unwrap().size, 0);
}

#[test]
fn a_crash_amid_writes_outside_the_engine_keeps_whole_writes_only() {
    // Writers use the split write path (data written without the engine) while commits run
    // back to back; then a "crash". Every file reopens empty or with exactly its data, never
    // with blocks whose data was not written.
    let mem = fresh(64 * MIB);
    let vol = Arc::new(SharedVolume::new(open(&mem)));
    let stop = Arc::new(AtomicBool::new(false));
    let committer = {
        let (vol, stop) = (vol.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                vol.commit().unwrap();
            }
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let vol = vol.clone();
            std::thread::spawn(move || {
                for j in 0..150usize {
                    let name = format!("w{w}-{j}");
                    let ino = vol
                        .with(|v| v.create(ROOT, name.as_bytes(), 0o644, 0, 0))
                        .unwrap()
                        .ino;
                    let data = vec![(w * 31 + j) as u8; 5000 + j * 97];
                    vol.write(ino, 0, &data, |_, _| Ok(())).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    committer.join().unwrap();
    drop(vol);
    assert_clean(&mem);
    let mut v = open(&mem);
    let mut whole = 0;
    for w in 0..4usize {
        for j in 0..150usize {
            if let Ok(a) = v.lookup(ROOT, format!("w{w}-{j}").as_bytes()) {
                let data = v.read(a.ino, 0, 1 << 20).unwrap();
                if !data.is_empty() {
                    assert_eq!(data, vec![(w * 31 + j) as u8; 5000 + j * 97], "w{w}-{j}");
                    whole += 1;
                }
            }
        }
    }
    assert!(whole > 0, "no write was committed during the run");
}

fn gated(mem: &Arc<MemStore>, gate_reads: bool) -> Arc<GatedStore> {
    Arc::new(GatedStore {
        inner: mem.clone(),
        closed: Mutex::new(false),
        opened: Condvar::new(),
        waiting: AtomicBool::new(false),
        gate_reads: AtomicBool::new(gate_reads),
        gate_writes: AtomicBool::new(false),
    })
}

fn wait_for_gate(store: &GatedStore) {
    while !store.waiting.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn operations_that_fill_half_the_journal_while_a_commit_is_in_flight_go_on() {
    // A small journal: a few dozen creates make a commit due. One commit is stuck on the disk
    // (outside the engine's lock) while creates go on; none of them may start a second one.
    let mem = fresh_with_journal(64 * MIB, 32);
    let store = gated(&mem, false);
    let vol = Arc::new(SharedVolume::new(Volume::open(store.clone()).unwrap()));
    vol.with(|v| v.create(ROOT, b"first", 0o644, 0, 0)).unwrap();
    store.close();
    let committer = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.commit())
    };
    wait_for_gate(&store);
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            let mut v = vol.lock();
            let mut made = 0;
            // Half the journal's capacity (29 blocks) and a little more: a commit is due.
            while v.pending_blocks() <= 16 {
                let a = v.create(ROOT, format!("f{made}").as_bytes(), 0o644, 0, 0)?;
                v.write(a.ino, 0, &[made as u8; 100])?;
                made += 1;
            }
            Ok::<_, volume::FsError>(made)
        })
        .join()
    });
    store.open();
    committer.join().unwrap().unwrap();
    let made = made
        .expect("an operation panicked while a commit was in flight")
        .unwrap();
    vol.commit().unwrap();
    drop(vol);
    assert_clean(&mem);
    let mut v = open(&mem);
    for j in 0..made {
        let a = v.lookup(ROOT, format!("f{j}").as_bytes()).unwrap();
        assert_eq!(v.read(a.ino, 0, 200).unwrap(), vec![j as u8; 100]);
    }
}

#[test]
fn a_commit_made_due_by_operations_waits_for_reads_planned_before_it() {
    // A small, full volume: the only blocks that can come free are those of "f", whose read
    // is in flight. Deleting f and then making a commit due by creates must not hand f's
    // blocks to a new file's data while the read is still reading them.
    let mem = fresh_with_journal(8 * MIB, 32);
    let data = vec![0x3C; 256 * 1024];
    let f = {
        let mut v = open(&mem);
        let a = v.create(ROOT, b"f", 0o644, 0, 0).unwrap();
        v.write(a.ino, 0, &data).unwrap();
        let fill = v.create(ROOT, b"fill", 0o644, 0, 0).unwrap();
        let mut off = 0;
        while let Ok(n) = v.write(fill.ino, off, &[1u8; 1 << 20]) {
            off += n as u64;
        }
        // A few blocks free for the directory to grow into.
        v.setattr(
            fill.ino,
            volume::SetAttr {
                size: Some(off - 64 * 1024),
                ..Default::default()
            },
        )
        .unwrap();
        v.commit().unwrap();
        a.ino
    };
    let store = gated(&mem, true);
    let vol = Arc::new(SharedVolume::new(Volume::open(store.clone()).unwrap()));
    store.close();
    let reader = {
        let vol = vol.clone();
        std::thread::spawn(move || vol.read(f, 0, 1 << 20))
    };
    wait_for_gate(&store);
    {
        let mut v = vol.lock();
        v.unlink(ROOT, b"f").unwrap();
        let mut j = 0;
        // Until a commit is due (more than half the journal's 29 blocks pending), or one was
        // made by the operations themselves.
        let commits = v.commits();
        while v.pending_blocks() <= 16 && v.commits() == commits {
            v.create(ROOT, format!("n{j}").as_bytes(), 0o644, 0, 0)
                .unwrap();
            j += 1;
        }
        for k in 0..j {
            let a = v.lookup(ROOT, format!("n{k}").as_bytes()).unwrap();
            if v.write(a.ino, 0, &[0xEE; 16 * 1024]).is_err() {
                break;
            }
        }
    }
    store.open();
    let read = reader.join().unwrap().unwrap();
    assert!(
        read == data,
        "a read planned before a delete saw other data"
    );
    vol.commit().unwrap();
    drop(vol);
    assert_clean(&mem);
}
