//! Layouts (direct mode): a holder writes a file's data on the store itself at the blocks a
//! layout gives it, and the engine keeps the metadata. Blocks reserved for a layout read as a
//! hole to everyone until committed, never show old contents, are free again after a crash,
//! and blocks freed from a file while a layout is out are not given to another file.

mod common;

use common::{assert_clean, fresh, open, MIB};
use volume::layout::BLOCK_SIZE;
use volume::{BlockStore, Extent, FsError, Ino, Layout};

const BS: u64 = BLOCK_SIZE as u64;

type Vol = volume::Volume<std::sync::Arc<volume::MemStore>>;

/// Write `data` at file offset `at` through the layout, as a direct client does.
fn write_through(store: &impl BlockStore, layout: &Layout, at: u64, data: &[u8]) {
    let mut pos = at;
    while pos < at + data.len() as u64 {
        let e = extent_at(layout, pos);
        let n = (e.offset + e.len - pos).min(at + data.len() as u64 - pos);
        let disk = e.disk.expect("a write layout has no holes") + (pos - e.offset);
        let s = (pos - at) as usize;
        store.write_at(&data[s..s + n as usize], disk).unwrap();
        pos += n;
    }
}

fn extent_at(layout: &Layout, pos: u64) -> Extent {
    *layout
        .extents
        .iter()
        .find(|e| e.offset <= pos && pos < e.offset + e.len)
        .expect("the layout covers the offset")
}

#[test]
fn a_write_layout_reads_as_a_hole_until_committed() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    let free = v.statfs().bfree;
    let l = v.layout_get(7, ino, 0, 3 * BS, true).unwrap();
    assert_eq!(l.extents.len(), 1, "{l:?}");
    assert!(l.extents[0].reserved);
    assert_eq!(v.statfs().bfree, free - 3, "reserved blocks are not free");
    write_through(&*store, &l, 0, &vec![b'x'; 3 * BS as usize]);
    // Written but not committed: the file is still empty, to the engine and to others.
    assert_eq!(v.getattr(ino).unwrap().size, 0);
    let other = v.layout_get(8, ino, 0, 3 * BS, false).unwrap();
    assert!(other.extents.is_empty(), "{other:?}");
    let a = v
        .layout_commit(7, ino, &[(0, 3 * BS)], 3 * BS, None)
        .unwrap();
    assert_eq!(a.size, 3 * BS);
    assert_eq!(
        v.read(ino, 0, 3 * BS as usize).unwrap(),
        vec![b'x'; 3 * BS as usize]
    );
    assert_eq!(v.reserved_blocks(), 0);
    v.layout_return(7, ino);
    v.layout_return(8, ino);
    v.commit().unwrap();
    drop(v);
    assert_clean(&store);
    let mut v = open(&store);
    assert_eq!(
        v.read(ino, 0, 3 * BS as usize).unwrap(),
        vec![b'x'; 3 * BS as usize]
    );
}

#[test]
fn a_block_written_in_part_never_shows_what_it_held() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    // A deleted file leaves its bytes in the blocks it had.
    let old = v.create(Ino::ROOT, b"old", 0o100644, 0, 0).unwrap().ino;
    v.write(old, 0, &vec![b'S'; 64 * BS as usize]).unwrap();
    v.unlink(Ino::ROOT, b"old").unwrap();
    v.commit().unwrap();
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    let mut stale = 0;
    for k in 0..64u64 {
        let at = k * BS + 100;
        let l = v.layout_get(1, ino, at, 10, true).unwrap();
        write_through(&*store, &l, at, b"0123456789");
        v.layout_commit(1, ino, &[(at, 10)], at + 10, None).unwrap();
        let blk = v.read(ino, k * BS, BS as usize).unwrap();
        stale += blk.iter().filter(|&&b| b == b'S').count();
        assert_eq!(&blk[100..110], b"0123456789");
    }
    assert_eq!(stale, 0, "bytes of the deleted file showed through");
}

#[test]
fn a_crash_before_the_commit_leaves_the_reserved_blocks_free_and_unmapped() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.commit().unwrap();
    let free = v.statfs().bfree;
    let l = v.layout_get(1, ino, 0, 8 * BS, true).unwrap();
    write_through(&*store, &l, 0, &vec![b'u'; 8 * BS as usize]);
    // Something else commits meanwhile: the reservation must not be in it.
    let g = v.create(Ino::ROOT, b"g", 0o100644, 0, 0).unwrap().ino;
    v.write(g, 0, &vec![b'g'; BS as usize]).unwrap();
    v.commit().unwrap();
    drop(v); // the crash
    assert_clean(&store);
    let mut v = open(&store);
    assert_eq!(v.getattr(ino).unwrap().size, 0);
    assert_eq!(v.lseek(ino, 0, 3).unwrap_err().errno(), libc::ENXIO);
    // g's block was allocated since; every reserved one is free again.
    assert_eq!(v.statfs().bfree, free - 1);
}

#[test]
fn blocks_freed_under_a_layout_go_to_no_other_file_until_it_is_returned() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let a = v.create(Ino::ROOT, b"a", 0o100644, 0, 0).unwrap().ino;
    v.write(a, 0, &vec![b'a'; 16 * BS as usize]).unwrap();
    v.commit().unwrap();
    let l = v.layout_get(1, a, 0, 16 * BS, false).unwrap();
    let held: Vec<u64> = l.extents.iter().flat_map(blocks_of).collect();
    assert_eq!(held.len(), 16);
    truncate(&mut v, a, 0);
    v.commit().unwrap();
    // Fill the volume's free space: none of it may be the blocks the reader may still read.
    let (b, off, given) = take_all_space(&mut v, b"b");
    given_none_of(&given, &held, "a reader's layout");
    // Returned: they are free again.
    v.layout_return(1, a);
    v.commit().unwrap();
    let more = v.write(b, off, &vec![b'b'; 4 * BS as usize]).unwrap();
    assert_eq!(more, 4 * BS as usize);
}

/// Cut `ino` to `size` bytes.
fn truncate(v: &mut Vol, ino: Ino, size: u64) {
    let cut = volume::SetAttr {
        size: Some(size),
        ..Default::default()
    };
    v.setattr(ino, cut).unwrap();
}

/// A new file `name` made to take every block it can (one write of all the free space, cut
/// short where the space runs out), committed: its inode, its size, and the blocks it was
/// given, as a read layout of holder 2 (kept) shows them.
fn take_all_space(v: &mut Vol, name: &[u8]) -> (Ino, u64, Vec<u64>) {
    let ino = v.create(Ino::ROOT, name, 0o100644, 0, 0).unwrap().ino;
    let all = v.statfs().bfree * BS;
    let _ = v.write(ino, 0, &vec![b'g'; all as usize]);
    v.commit().unwrap();
    let size = v.getattr(ino).unwrap().size;
    assert!(size > all / 2, "{name:?} took only {size} of {all} bytes");
    let given = v.layout_get(2, ino, 0, size, false).unwrap();
    (
        ino,
        size,
        given.extents.iter().flat_map(blocks_of).collect(),
    )
}

/// Panics if a block of `given` is one of `held`, which `whose` still covers.
fn given_none_of(given: &[u64], held: &[u64], whose: &str) {
    if let Some(b) = given.iter().find(|b| held.contains(b)) {
        panic!("block {b} given to another file while {whose} covers it");
    }
}

fn blocks_of(e: &Extent) -> Vec<u64> {
    match e.disk {
        Some(d) => (0..e.len / BS).map(|k| d / BS + k).collect(),
        None => Vec::new(),
    }
}

#[test]
fn another_holders_uncommitted_blocks_are_not_given_for_writing() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.layout_get(1, ino, 0, 2 * BS, true).unwrap();
    let e = v.layout_get(2, ino, BS, BS, true).unwrap_err();
    assert!(matches!(e, FsError::WouldBlock), "{e}");
    // Its own range past them is fine, and returning the first holder's frees the rest.
    v.layout_get(2, ino, 2 * BS, BS, true).unwrap();
    v.layout_return(1, ino);
    v.layout_get(2, ino, 0, 2 * BS, true).unwrap();
    assert_eq!(v.reserved_blocks(), 3);
    v.layout_return(2, ino);
    assert_eq!(v.reserved_blocks(), 0);
}

#[test]
fn a_truncate_drops_reservations_past_the_new_size() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.write(ino, 0, &vec![b'k'; BS as usize]).unwrap();
    let free = v.statfs().bfree;
    let l = v.layout_get(1, ino, BS, 4 * BS, true).unwrap();
    write_through(&*store, &l, BS, &vec![b'w'; 4 * BS as usize]);
    truncate(&mut v, ino, 10);
    // The write raced the truncate and lost: committing it maps nothing past the cut.
    let a = v
        .layout_commit(1, ino, &[(BS, 4 * BS)], 5 * BS, None)
        .unwrap();
    assert_eq!(a.size, 10, "the size came back over the cut");
    assert_eq!(v.reserved_blocks(), 0);
    v.layout_return(1, ino);
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, free);
    drop(v);
    assert_clean(&store);
}

#[test]
fn a_commit_of_a_returned_layout_is_refused_and_maps_nothing() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.layout_get(1, ino, 0, BS, true).unwrap();
    v.layout_return(1, ino);
    let refused = v.layout_commit(1, ino, &[(0, BS)], 0, None);
    assert!(matches!(refused, Err(FsError::Stale)), "{refused:?}");
    assert_eq!(v.lseek(ino, 0, 3).unwrap_err().errno(), libc::ENXIO);
    v.commit().unwrap();
    drop(v);
    assert_clean(&store);
}

#[test]
fn a_read_layout_shows_mapped_blocks_and_holes_up_to_the_size() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.write(ino, 0, &vec![1; BS as usize]).unwrap();
    v.write(ino, 3 * BS, &[2; 10]).unwrap();
    let l = v.layout_get(1, ino, 0, 100 * BS, false).unwrap();
    assert_eq!(l.size, 3 * BS + 10);
    let kinds: Vec<(u64, u64, bool)> = l
        .extents
        .iter()
        .map(|e| (e.offset, e.len, e.disk.is_some()))
        .collect();
    assert_eq!(
        kinds,
        vec![(0, BS, true), (BS, 2 * BS, false), (3 * BS, BS, true)]
    );
    let mut b = vec![0u8; 10];
    store.read_at(&mut b, l.extents[2].disk.unwrap()).unwrap();
    assert_eq!(b, vec![2; 10]);
    assert!(matches!(
        v.layout_get(1, Ino::ROOT, 0, BS, false),
        Err(FsError::IsDir)
    ));
}

#[test]
fn a_commit_of_a_range_as_long_as_the_largest_file_is_quick_and_grows_nothing() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.write(ino, 0, b"abc").unwrap();
    let a = v
        .layout_commit(1, ino, &[(BS, u64::MAX - BS)], u64::MAX / 2, None)
        .unwrap_err();
    assert!(matches!(a, FsError::FileTooBig), "{a}");
    v.layout_get(1, ino, 0, BS, false).unwrap();
    let a = v
        .layout_commit(1, ino, &[(BS, volume::fs::MAX_FILE_SIZE)], BS * 9, None)
        .unwrap();
    assert_eq!(a.size, 3, "nothing written there was mapped");
}

#[test]
fn a_punch_within_one_block_keeps_the_reservation_and_a_whole_one_drops_it() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.write(ino, 0, &vec![1; 4 * BS as usize]).unwrap();
    // Holes at blocks 4 and 5, reserved for a writer.
    v.layout_get(1, ino, 4 * BS, 2 * BS, true).unwrap();
    let punch = volume::fs::FALLOC_PUNCH_HOLE | volume::fs::FALLOC_KEEP_SIZE;
    v.fallocate(ino, 4 * BS + 100, 200, punch).unwrap();
    assert_eq!(v.reserved_blocks(), 2);
    v.fallocate(ino, 4 * BS, BS, punch).unwrap();
    assert_eq!(v.reserved_blocks(), 1);
    v.layout_return(1, ino);
    v.commit().unwrap();
    drop(v);
    assert_clean(&store);
}

#[test]
fn a_second_write_past_the_end_keeps_what_the_first_put_there_before_its_commit() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.write(ino, 0, &[b'x'; 100]).unwrap();
    // Two writes past the end, in the end's block, neither committed yet.
    let l = v.layout_get(1, ino, 200, 10, true).unwrap();
    write_through(&*store, &l, 200, b"0123456789");
    let l = v.layout_get(1, ino, 300, 10, true).unwrap();
    write_through(&*store, &l, 300, b"abcdefghij");
    v.layout_commit(1, ino, &[(200, 10), (300, 10)], 310, None)
        .unwrap();
    let got = v.read(ino, 0, 400).unwrap();
    assert_eq!(got.len(), 310);
    assert_eq!(
        &got[200..210],
        b"0123456789",
        "the second layout zeroed the first write"
    );
    assert!(got[100..200].iter().all(|&b| b == 0));
    assert!(got[210..300].iter().all(|&b| b == 0));
}

#[test]
fn reserved_blocks_a_truncate_cuts_go_to_no_other_file_until_the_layout_is_returned() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.write(ino, 0, b"k").unwrap();
    let free = v.statfs().bfree;
    let l = v.layout_get(1, ino, BS, 8 * BS, true).unwrap();
    let reserved: Vec<u64> = l.extents.iter().flat_map(blocks_of).collect();
    truncate(&mut v, ino, 0);
    v.commit().unwrap();
    // The holder may still be writing them: another file that takes every block it can
    // is given none of them (it runs out of space first).
    let (g, _, given) = take_all_space(&mut v, b"g");
    given_none_of(&given, &reserved, "f's write layout");
    v.layout_return(2, g);
    v.layout_return(1, ino);
    v.unlink(Ino::ROOT, b"g").unwrap();
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, free + 1, "f's one block, cut away");
    drop(v);
    assert_clean(&store);
}

#[test]
fn a_holder_whose_layouts_were_taken_has_its_next_commit_refused_and_maps_nothing() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    let free = v.statfs().bfree;
    let l = v.layout_get(1, ino, 0, 2 * BS, true).unwrap();
    write_through(&*store, &l, 0, &vec![b'w'; 2 * BS as usize]);
    assert_eq!(v.layout_holders(ino), vec![1]);
    v.layout_revoke(1, ino);
    assert!(v.layout_holders(ino).is_empty());
    let refused = v.layout_commit(1, ino, &[(0, 2 * BS)], 2 * BS, None);
    assert!(matches!(refused, Err(FsError::Stale)), "{refused:?}");
    assert_eq!(v.getattr(ino).unwrap().size, 0, "the taken writes appeared");
    // Refused once: the holder goes on with new layouts.
    v.layout_commit(1, ino, &[], 0, None).unwrap();
    v.commit().unwrap();
    // Its two blocks are held (it may still write them) until it returns its layouts.
    assert_eq!(v.statfs().bfree, free - 2);
    v.layout_return(1, ino);
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, free);
    drop(v);
    assert_clean(&store);
}

/// A holder whose layouts were taken may still be writing their blocks until it says it is
/// done with them: it holds them until then, so that a session ending with only taken
/// layouts is fenced first where the store can, as one with layouts still out is.
#[test]
fn a_holder_whose_layouts_were_taken_holds_them_until_it_returns_them() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.layout_get(1, ino, 0, 2 * BS, true).unwrap();
    assert!(v.holds_layouts(1));
    v.layout_revoke(1, ino);
    assert!(v.holds_layouts(1), "taken, and not returned");
    v.layout_return(1, ino);
    assert!(!v.holds_layouts(1), "returned");
    v.layout_get(1, ino, 0, 2 * BS, true).unwrap();
    v.layout_revoke(1, ino);
    v.layout_return_all(1);
    assert!(!v.holds_layouts(1), "gone with its session");
    v.commit().unwrap();
    drop(v);
    assert_clean(&store);
}

#[test]
fn a_holder_whose_session_ended_has_its_commit_of_what_it_wrote_refused() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    let free = v.statfs().bfree;
    let l = v.layout_get(1, ino, 0, 2 * BS, true).unwrap();
    write_through(&*store, &l, 0, &vec![b'w'; 2 * BS as usize]);
    // Its session ended (it was away a lease): its layouts went with it. A commit it makes
    // when it comes back names writes no layout of its covers any more: refused, so its
    // fsync says they are lost, not that they are safe.
    v.layout_return_all(1);
    let refused = v.layout_commit(1, ino, &[(0, 2 * BS)], 2 * BS, None);
    assert!(matches!(refused, Err(FsError::Stale)), "{refused:?}");
    let again = v.layout_commit(1, ino, &[(0, 2 * BS)], 2 * BS, None);
    assert!(matches!(again, Err(FsError::Stale)), "{again:?}");
    assert_eq!(v.getattr(ino).unwrap().size, 0, "the lost writes appeared");
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, free);
    drop(v);
    assert_clean(&store);
}

#[test]
fn a_block_freed_under_a_layout_before_the_commit_is_counted_once() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let a = v.create(Ino::ROOT, b"a", 0o100644, 0, 0).unwrap().ino;
    v.write(a, 0, &vec![b'a'; 16 * BS as usize]).unwrap();
    v.commit().unwrap();
    let _reader = v.layout_get(1, a, 0, 16 * BS, false).unwrap();
    truncate(&mut v, a, 0);
    // Freed by an open transaction and held for the reader: each block set aside once.
    let before = v.quarantined_blocks();
    v.commit().unwrap();
    let held = v.quarantined_blocks();
    assert!(held >= 16, "the reader's 16 blocks stay held: {held}");
    assert_eq!(
        before, held,
        "the commit let none go, so none was counted twice"
    );
    v.layout_return(1, a);
    v.commit().unwrap();
    assert_eq!(v.quarantined_blocks(), 0);
    drop(v);
    assert_clean(&store);
}

/// A holder whose layouts on `f` were taken while it may still be writing them (it did not
/// answer a recall in time): the blocks its layout covered, reserved or mapped, are given
/// to no other file until `done` (its return, or its session's end) lets them go.
fn a_revoked_holders_blocks_stay_out_until(done: impl Fn(&mut Vol, Ino)) {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let f = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.write(f, 0, &vec![b'k'; BS as usize]).unwrap();
    v.commit().unwrap();
    let free = v.statfs().bfree;
    // Block 0 is mapped (written over in place), blocks 1..9 are reserved for it.
    let l = v.layout_get(1, f, 0, 9 * BS, true).unwrap();
    let covered: Vec<u64> = l.extents.iter().flat_map(blocks_of).collect();
    assert_eq!(covered.len(), 9);
    v.layout_revoke(1, f);
    assert!(v.layout_holders(f).is_empty(), "no longer recalled");
    truncate(&mut v, f, 0);
    v.commit().unwrap();
    // Free on the bitmap (f's one block cut away, its reservations dropped), but held: not
    // free to anyone.
    assert_eq!(v.statfs().bfree, free - 8, "held blocks counted as free");
    let (g, size, given) = take_all_space(&mut v, b"g");
    given_none_of(
        &given,
        &covered,
        "a revoked holder's layout (it may still write them)",
    );
    v.layout_return(2, g);
    done(&mut v, f);
    v.commit().unwrap();
    // Let go: g grows into them.
    let more = v.write(g, size, &vec![b'g'; 9 * BS as usize]).unwrap();
    assert_eq!(more, 9 * BS as usize, "the holder's blocks never came back");
    v.unlink(Ino::ROOT, b"g").unwrap();
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, free + 1, "f's one block, cut away");
    drop(v);
    assert_clean(&store);
}

#[test]
fn a_revoked_holders_blocks_go_to_no_other_file_until_it_returns_them() {
    a_revoked_holders_blocks_stay_out_until(|v, f| v.layout_return(1, f));
}

#[test]
fn a_revoked_holders_blocks_go_to_no_other_file_until_its_session_ends() {
    a_revoked_holders_blocks_stay_out_until(|v, _| v.layout_return_all(1));
}

#[test]
fn blocks_reserved_for_layouts_count_against_the_quota_until_committed_or_returned() {
    let store = fresh(16 * MIB);
    let mut v = open(&store);
    let e = v.mkdir(Ino::ROOT, b"e", 0o755, 0, 0).unwrap().ino;
    let cap = volume::Quota {
        max_blocks: 40,
        max_inodes: 10,
        tag: 0,
    };
    v.set_quota(e, cap).unwrap();
    let f = v.create(e, b"f", 0o100644, 0, 0).unwrap().ino;
    let g = v.create(e, b"g", 0o100644, 0, 0).unwrap().ino;
    // 30 blocks of the 40 reserved for one writer: a second asking for 30 more is refused
    // (its writes go through the server, which answers the same), though nothing is
    // committed yet.
    let l = v.layout_get(1, f, 0, 30 * BS, true).unwrap();
    let refused = v.layout_get(2, g, 0, 30 * BS, true);
    assert!(matches!(refused, Err(FsError::DiskQuota)), "{refused:?}");
    let through_engine = v.write(g, 0, &vec![b'g'; 30 * BS as usize]);
    assert!(
        matches!(through_engine, Err(FsError::DiskQuota)),
        "{through_engine:?}"
    );
    // The writer asking again over its own reservations is not charged twice.
    v.layout_get(1, f, 0, 30 * BS, true).unwrap();
    write_through(&*store, &l, 0, &vec![b'f'; 30 * BS as usize]);
    v.layout_commit(1, f, &[(0, 30 * BS)], 30 * BS, None)
        .unwrap();
    let used = v.quota_of(f).unwrap().unwrap().2;
    assert!(used.blocks >= 30 && used.blocks <= 32, "{used:?}");
    // Reserved, then returned unused: room again.
    let room = 40 - used.blocks;
    let over = v.layout_get(2, g, 0, (room + 1) * BS, true);
    assert!(matches!(over, Err(FsError::DiskQuota)), "{over:?}");
    v.layout_get(2, g, 0, (room - 2) * BS, true).unwrap();
    assert!(matches!(
        v.layout_get(3, g, (room - 2) * BS, 3 * BS, true),
        Err(FsError::DiskQuota)
    ));
    v.layout_return(2, g);
    v.layout_get(3, g, 0, (room - 2) * BS, true).unwrap();
    v.layout_return(3, g);
    v.layout_return(1, f);
    v.commit().unwrap();
    drop(v);
    assert_clean(&store);
}

/// The zeros a write layout puts in a block its holder writes only in part, and past the
/// file's end, have landed before the layout is handed out: a store whose writes land late
/// (RADOS) would otherwise let them land over the holder's own write. A direct mount's
/// "kept" read as zeros from a RADOS volume under load.
#[test]
fn the_zeros_a_write_layout_puts_in_place_land_before_the_holders_write() {
    let inner = fresh(16 * MIB);
    let store = std::sync::Arc::new(volume::LateStore::over(inner.clone()));
    let mut v = volume::Volume::open(store.clone()).unwrap();
    let ino = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    store.flush().unwrap();
    let l = v.layout_get(7, ino, 0, 4, true).unwrap();
    write_through(&*inner, &l, 0, b"kept");
    v.layout_commit(7, ino, &[(0, 4)], 4, None).unwrap();
    assert_eq!(
        v.read(ino, 0, 10).unwrap(),
        b"kept",
        "the block zeroed for it"
    );
    // Past the end, in the same block: the tail zeroed for the new end.
    let l = v.layout_get(7, ino, 4, 4, true).unwrap();
    write_through(&*inner, &l, 4, b"more");
    v.layout_commit(7, ino, &[(4, 4)], 8, None).unwrap();
    assert_eq!(
        v.read(ino, 0, 10).unwrap(),
        b"keptmore",
        "the tail zeroed past it"
    );
}
