//! A write and truncates that overlap it (the write's data goes to disk outside the engine)
//! end as if each had happened at once, in some order: never with the write's size over the
//! hole a truncate made, nor a truncate's zeros over the write's data.

mod common;
use common::*;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use volume::Ino;
use volume::{BlockStore, MemStore, SetAttr, SharedVolume, Volume};

const ROOT: Ino = Ino::ROOT;

fn truncate<S: BlockStore>(v: &mut Volume<S>, ino: Ino, size: u64) {
    v.setattr(
        ino,
        SetAttr {
            size: Some(size),
            ..Default::default()
        },
    )
    .unwrap();
}

/// The file's bytes as the model has them after a write of `data` at `off`.
fn model_write(mut c: Vec<u8>, off: usize, data: &[u8]) -> Vec<u8> {
    if c.len() < off + data.len() {
        c.resize(off + data.len(), 0);
    }
    c[off..off + data.len()].copy_from_slice(data);
    c
}

fn model_truncate(mut c: Vec<u8>, size: u64) -> Vec<u8> {
    c.resize(size as usize, 0);
    c
}

/// Every outcome of the write placed anywhere among the truncates (which keep their order).
fn allowed(initial: &[u8], off: usize, data: &[u8], truncs: &[u64]) -> Vec<Vec<u8>> {
    (0..=truncs.len())
        .map(|k| {
            let mut c = initial.to_vec();
            for &t in &truncs[..k] {
                c = model_truncate(c, t);
            }
            c = model_write(c, off, data);
            for &t in &truncs[k..] {
                c = model_truncate(c, t);
            }
            c
        })
        .collect()
}

fn contents<S: BlockStore>(v: &mut Volume<S>, ino: Ino) -> Vec<u8> {
    let size = v.getattr(ino).unwrap().size;
    let c = v.read(ino, 0, size as usize).unwrap();
    assert_eq!(c.len() as u64, size);
    c
}

/// Describe how an outcome differs from the allowed ones.
fn explain(got: &[u8], ok: &[Vec<u8>]) -> String {
    let zeros = got.iter().filter(|&&b| b == 0).count();
    let sizes: Vec<usize> = ok.iter().map(|c| c.len()).collect();
    format!(
        "size {} with {zeros} zero bytes; allowed sizes {sizes:?}",
        got.len()
    )
}

#[test]
fn truncates_between_a_writes_plan_and_its_end_leave_one_order_or_another() {
    // (initial size, write offset, write length, truncates after the data is on disk)
    let cases: &[(usize, usize, usize, &[u64])] = &[
        (8192, 0, 8192, &[0]),
        (10_000, 5000, 4000, &[6000]),
        (100, 50, 4000, &[200]),
        (100, 50, 4000, &[20_000]),
        (100, 8000, 100, &[50]),
        (0, 0, 8192, &[4096]),
        (8192, 0, 8192, &[10, 5000]),
        (60_000, 0, 60_000, &[0, 100_000]),
    ];
    let mut bad = Vec::new();
    for &(init, off, len, truncs) in cases {
        let s = fresh(64 * MIB);
        let mut v = open(&s);
        let f = v.create(ROOT, b"f", 0o644, 0, 0).unwrap().ino;
        let initial = vec![b'a'; init];
        v.write(f, 0, &initial).unwrap();
        v.commit().unwrap();
        let data = vec![b'b'; len];
        let mut plan = v.plan_write(f, off as u64, len).unwrap();
        let written = plan.execute(&*v.shared_store(), &data);
        for &t in truncs {
            truncate(&mut v, f, t);
        }
        assert_eq!(v.finish_write(plan, written).unwrap(), len);
        let got = contents(&mut v, f);
        let ok = allowed(&initial, off, &data, truncs);
        if !ok.contains(&got) {
            bad.push(format!(
                "size {init}, write {len} at {off}, truncates {truncs:?}: {}",
                explain(&got, &ok)
            ));
        }
        v.commit().unwrap();
        drop(v);
        assert_clean(&s);
    }
    assert!(bad.is_empty(), "not linearizable:\n{}", bad.join("\n"));
}

/// File data of this byte waits at the gate while it is closed.
const GATED: u8 = 0x77;

/// A store whose writes of `GATED` data wait while the gate is closed: a write's data held on
/// its way to disk for as long as a test needs.
struct GatedStore {
    inner: Arc<MemStore>,
    closed: Mutex<bool>,
    opened: Condvar,
    waiting: AtomicBool,
}

impl GatedStore {
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }
}

impl BlockStore for GatedStore {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.first() == Some(&GATED) {
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                self.waiting.store(true, Ordering::SeqCst);
                closed = self.opened.wait(closed).unwrap();
            }
        }
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

#[test]
fn a_truncate_while_a_writes_data_is_on_its_way_to_disk_is_ordered_with_it() {
    let mem = fresh(64 * MIB);
    let store = Arc::new(GatedStore {
        inner: mem.clone(),
        closed: Mutex::new(false),
        opened: Condvar::new(),
        waiting: AtomicBool::new(false),
    });
    let vol = Arc::new(SharedVolume::new(Volume::open(store.clone()).unwrap()));
    let f = vol.with(|v| v.create(ROOT, b"f", 0o644, 0, 0)).unwrap().ino;
    let initial = vec![b'a'; 8192];
    vol.with(|v| v.write(f, 0, &initial)).unwrap();
    vol.commit().unwrap();
    store.set(true);
    let data = vec![GATED; 8192];
    let writer = {
        let (vol, data) = (vol.clone(), data.clone());
        std::thread::spawn(move || vol.write(f, 0, &data, |_, _| Ok(())))
    };
    while !store.waiting.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // The write's blocks are mapped and its data is held at the gate: truncate now.
    let entered = Arc::new(AtomicBool::new(false));
    let truncater = {
        let (vol, entered) = (vol.clone(), entered.clone());
        std::thread::spawn(move || {
            let mut v = vol.lock();
            entered.store(true, Ordering::SeqCst);
            truncate(&mut v, f, 0)
        })
    };
    // Let the data go once the truncate holds the engine (it may wait there for the data).
    while !entered.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    store.set(false);
    truncater.join().unwrap();
    assert_eq!(writer.join().unwrap().unwrap(), 8192);
    let got = vol.with(|v| contents(v, f));
    let ok = allowed(&initial, 0, &data, &[0]);
    assert!(
        ok.contains(&got),
        "not linearizable: {}",
        explain(&got, &ok)
    );
    vol.commit().unwrap();
    drop(vol);
    assert_clean(&mem);
}

#[test]
fn a_read_while_a_write_fills_a_hole_sees_zeros_or_the_data_never_old_bytes() {
    let s = fresh_with_inodes(8 * MIB, 256);
    let mut v = open(&s);
    // Every free block holds someone's deleted secret.
    let secret = v.create(ROOT, b"secret", 0o600, 0, 0).unwrap().ino;
    let chunk = vec![b'S'; 64 * 1024];
    let mut off = 0;
    while let Ok(n) = v.write(secret, off, &chunk) {
        off += n as u64;
    }
    v.unlink(ROOT, b"secret").unwrap();
    v.commit().unwrap();
    let f = v.create(ROOT, b"sparse", 0o644, 0, 0).unwrap().ino;
    truncate(&mut v, f, 1 << 20);
    let data = vec![b'w'; 8192];
    let mut plan = v.plan_write(f, 4096, data.len()).unwrap();
    // The write's blocks are mapped; its data is not on the store yet. A read now:
    let read = v.plan_read(f, 0, 16384).unwrap().execute(&*s).unwrap();
    let written = plan.execute(&*v.shared_store(), &data);
    v.finish_write(plan, written).unwrap();
    let leaked = read.iter().filter(|&&b| b == b'S').count();
    assert_eq!(leaked, 0, "a read saw {leaked} bytes of a deleted file");
    let before = vec![0u8; 16384];
    let mut after = before.clone();
    after[4096..12288].copy_from_slice(&data);
    assert!(
        read == before || read == after,
        "a torn read of a hole being filled"
    );
    v.commit().unwrap();
    drop(v);
    assert_clean(&s);
}

/// File data starting with this byte fails to reach the store (EIO).
const FAILING: u8 = 0xEE;

/// A store on which writes of `FAILING` data fail: a disk error under one write.
struct FailingStore(Arc<MemStore>);

impl BlockStore for FailingStore {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.first() == Some(&FAILING) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.0.write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
    fn len(&self) -> u64 {
        self.0.len()
    }
}

/// A volume whose every free block holds a deleted file's bytes (`S`), and a sparse file.
fn volume_of_deleted_secrets(mem: &Arc<MemStore>) -> (Volume<Arc<FailingStore>>, Ino) {
    let mut v = Volume::open(Arc::new(FailingStore(mem.clone()))).unwrap();
    let secret = v.create(ROOT, b"secret", 0o600, 0, 0).unwrap().ino;
    let chunk = vec![b'S'; 64 * 1024];
    let mut off = 0;
    while let Ok(n) = v.write(secret, off, &chunk) {
        off += n as u64;
    }
    v.unlink(ROOT, b"secret").unwrap();
    v.commit().unwrap();
    let f = v.create(ROOT, b"sparse", 0o644, 0, 0).unwrap().ino;
    truncate(&mut v, f, 1 << 20);
    (v, f)
}

#[test]
fn a_write_whose_data_fails_leaves_its_hole_a_hole() {
    let mem = fresh_with_inodes(8 * MIB, 256);
    let (mut v, f) = volume_of_deleted_secrets(&mem);
    let r = v.write(f, 4096, &[FAILING; 8192]);
    assert!(r.is_err(), "{r:?}");
    let read = v.read(f, 0, 16384).unwrap();
    let leaked = read.iter().filter(|&&b| b == b'S').count();
    assert_eq!(
        leaked, 0,
        "after a failed write a read saw {leaked} bytes of a deleted file"
    );
    assert_eq!(read, vec![0u8; 16384]);
    // The same when a truncate settles the failed write before it ends.
    let mut plan = v.plan_write(f, 4096, 8192).unwrap();
    let store = v.shared_store();
    let written = plan.execute(&*store, &[FAILING; 8192]);
    assert!(written.is_err());
    truncate(&mut v, f, 2 << 20);
    assert!(v.finish_write(plan, written).is_err());
    let read = v.read(f, 0, 16384).unwrap();
    assert_eq!(
        read,
        vec![0u8; 16384],
        "a settled failed write left old bytes"
    );
    v.commit().unwrap();
    drop(v);
    assert_clean(&mem);
}
