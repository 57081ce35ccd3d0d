//! `Request::meta` runs several times per call on the server: classifying a call must not
//! allocate, whatever it names.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use protocol::{RenameFlags, Request};

/// The system allocator, counting this thread's allocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is GlobalAlloc::alloc's, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn classifying_a_call_allocates_nothing() {
    let create = Request::Create {
        parent: 1,
        name: b"new".to_vec(),
        mode: 0o100644,
        uid: 0,
        gid: 0,
    };
    let calls = [
        Request::Lookup {
            parent: 1,
            name: b"a".to_vec(),
        },
        Request::Getattr { ino: 2 },
        Request::Rename {
            parent: 1,
            name: b"from".to_vec(),
            newparent: 3,
            newname: b"to".to_vec(),
            flags: RenameFlags::default(),
        },
        Request::Link {
            ino: 2,
            newparent: 3,
            newname: b"also".to_vec(),
        },
        create.clone(),
        Request::CreateAgain {
            ino: 9,
            req: Box::new(create),
        },
    ];
    for call in &calls {
        let mut named = 0;
        let n = allocations_in(|| {
            let m = call.meta();
            named = m.entries.len() + m.inodes().count();
        });
        assert_eq!(n, 0, "{call:?} allocated {n} times");
        assert!(named > 0, "{call:?} names nothing");
    }
}
