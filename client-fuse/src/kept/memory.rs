//! What the kept calls cost in memory at the budget (`KEPT_BYTES`): the frames they keep
//! (shared with the write-behind while a write is on its way) and the store's own bookkeeping
//! per call. Measured by counting this thread's live heap bytes; `cargo test -p client-fuse
//! --lib kept::memory -- --nocapture` prints the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use protocol::codec::encode_frame_head;
use protocol::{ClientMsg, Request, Response};

use super::Kept;
use crate::link::KEPT_BYTES;

/// The system allocator, counting this thread's live bytes.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|n| n.set(n.get() + layout.size() as isize));
        // SAFETY: the caller's contract is GlobalAlloc::alloc's, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|n| n.set(n.get() - layout.size() as isize));
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// The frame a mount sends for `req` with `bulk`.
fn frame(id: u64, req: Request, bulk: &[u8]) -> Arc<Vec<u8>> {
    let mut f = encode_frame_head(&ClientMsg::Call { id, req }, bulk.len()).unwrap();
    f.extend_from_slice(bulk);
    Arc::new(f)
}

fn attr(ino: u64) -> protocol::Attr {
    protocol::Attr {
        ino,
        size: 0,
        blocks: 0,
        atime: Default::default(),
        mtime: Default::default(),
        ctime: Default::default(),
        kind: protocol::FileKind::RegularFile,
        perm: 0o644,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        generation: 0,
    }
}

/// Keep answered calls made by `make` until the store is full (`KEPT_BYTES` counted as the
/// store counts it), as a mount does before it waits for a commit. Returns the calls kept,
/// the heap bytes the store holds (frames included), and the bytes of those frames.
fn fill(make: impl Fn(u64) -> (Request, Arc<Vec<u8>>, Response)) -> (usize, isize, usize) {
    let before = live();
    let mut k = Kept::default();
    let mut id = 1;
    let mut frames = 0;
    loop {
        let (req, f, resp) = make(id);
        if k.bytes() + super::cost(&f) > KEPT_BYTES {
            break;
        }
        k.keep(id, &req, &f, (false, None));
        drop(f);
        k.answered(id, &Ok(resp));
        frames += k.calls[&id].frame.len();
        id += 1;
    }
    let held = live() - before;
    let calls = k.len();
    drop(k);
    assert_eq!(live(), before, "the store let go of everything it held");
    (calls, held, frames)
}

fn report(what: &str, (calls, held, frames): (usize, isize, usize)) -> f64 {
    let ratio = held as f64 / KEPT_BYTES as f64;
    println!(
        "kept calls at the budget, {what}: {calls} calls, {:.1} MiB of frames, {:.1} MiB held \
         ({:.0} B a call beyond its frame; {ratio:.2} x the budget)",
        frames as f64 / (1 << 20) as f64,
        held as f64 / (1 << 20) as f64,
        (held - frames as isize) as f64 / calls as f64,
    );
    ratio
}

/// Writes of 128 KiB (the mount's largest): the frames are all there is.
#[test]
fn writes_at_the_budget_cost_the_budget() {
    let data = vec![7u8; 128 << 10];
    let write = |id: u64| {
        let req = Request::Write {
            ino: 5,
            offset: id * data.len() as u64,
            kill_priv: false,
        };
        let f = frame(id, req.clone(), &data);
        (req, f, Response::Written(data.len() as u32))
    };
    let ratio = report("128 KiB writes", fill(write));
    assert!(ratio < 1.01, "{ratio}");
}

/// Small calls (creates of short names, 4 KiB appends): the store's own bookkeeping per
/// call counts against the budget too, so what it holds stays within it.
#[test]
fn small_calls_at_the_budget_cost_no_more_than_the_budget() {
    let create = |id: u64| {
        let req = Request::Create {
            parent: 1,
            name: format!("message-{id:08}").into_bytes(),
            mode: 0o100644,
            uid: 0,
            gid: 0,
        };
        let f = frame(id, req.clone(), &[]);
        (req, f, Response::Attr(attr(id << 32 | 1)))
    };
    let creates = report("creates", fill(create));
    let data = vec![7u8; 4096];
    let append = |id: u64| {
        let req = Request::Write {
            ino: 5,
            offset: id * 4096,
            kill_priv: false,
        };
        let f = frame(id, req.clone(), &data);
        (req, f, Response::Written(4096))
    };
    let appends = report("4 KiB writes", fill(append));
    assert!(creates < 1.01 && appends < 1.01, "{creates} {appends}");
}
