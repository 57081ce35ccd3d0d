//! The demo's picture of an image: red exactly where a block is claimed twice.

use std::sync::Arc;

use demo::picture::{svg, write, RED};
use volume::fsck::block_map;
use volume::layout::{get_u32, put_u32, seal, split_ino, Superblock, BLOCK_SIZE};
use volume::{mkfs, BlockStore, Ino, MemStore, MkfsOptions, Volume};

fn block(s: &MemStore, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    s.read_at(&mut buf, b * BLOCK_SIZE as u64).unwrap();
    buf
}

/// A volume holding a few files, its journal cleared so a planted change stays; the store
/// and the files' inode indexes.
fn files() -> (Arc<MemStore>, Vec<u32>) {
    let s = Arc::new(MemStore::new(16 << 20));
    mkfs(&s, &MkfsOptions::default()).unwrap();
    let mut v = Volume::open(s.clone()).unwrap();
    let mut inos = Vec::new();
    for (i, name) in [&b"a"[..], b"b", b"c"].into_iter().enumerate() {
        let f = v.create(Ino::ROOT, name, 0o644, 0, 0).unwrap();
        v.write(f.ino, 0, &vec![i as u8; 3 * BLOCK_SIZE]).unwrap();
        inos.push(split_ino(f.ino.get()).0);
    }
    v.commit().unwrap();
    let g = Superblock::decode(&block(&s, 0)).unwrap().geometry;
    s.write_at(&vec![0u8; BLOCK_SIZE], g.journal_start * BLOCK_SIZE as u64)
        .unwrap();
    (s, inos)
}

/// The rectangles of one class, each as the blocks it covers.
fn rects(svg: &str, class: &str) -> Vec<(u64, u64)> {
    let key = format!("<rect class=\"{class}\" data-blocks=\"");
    svg.match_indices(&key)
        .map(|(at, _)| {
            let rest = &svg[at + key.len()..];
            let range = &rest[..rest.find('"').unwrap()];
            let (lo, hi) = range.split_once('-').unwrap();
            (lo.parse().unwrap(), hi.parse().unwrap())
        })
        .collect()
}

fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

#[test]
fn a_clean_image_has_no_red() {
    let (s, inos) = files();
    let picture = svg(&block_map(&s).unwrap(), "clean");
    assert!(rects(&picture, "twice").is_empty(), "{picture}");
    let red_cells = picture
        .lines()
        .filter(|l| l.contains("data-blocks") && l.contains(&format!("fill=\"{}\"", hex(RED))));
    assert_eq!(red_cells.count(), 0, "{picture}");
    for ino in inos {
        assert!(
            picture.contains(&format!(": inode {ino}</title>")),
            "{picture}"
        );
    }
}

#[test]
fn a_block_two_files_hold_is_red_at_its_cell() {
    let (s, inos) = files();
    let g = Superblock::decode(&block(&s, 0)).unwrap().geometry;
    let (ba, oa) = g.inode_location(inos[0]);
    let second_of_a = get_u32(&block(&s, ba), oa + 88 + 4);
    let (bc, oc) = g.inode_location(inos[2]);
    let mut img = block(&s, bc);
    put_u32(&mut img, oc + 88 + 4, second_of_a);
    seal(&mut img, bc);
    s.write_at(&img, bc * BLOCK_SIZE as u64).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let p = write(&block_map(&s).unwrap(), dir.path(), "crafted", "crafted").unwrap();
    assert_eq!(p.claimed_twice, 1);
    let picture = std::fs::read_to_string(&p.svg).unwrap();
    let red = rects(&picture, "twice");
    assert_eq!(
        red,
        vec![(second_of_a as u64, second_of_a as u64)],
        "{picture}"
    );
    let red_cell = format!("data-blocks=\"{second_of_a}-{second_of_a}\"");
    let line = picture.lines().find(|l| l.contains(&red_cell)).unwrap();
    assert!(line.contains(&format!("fill=\"{}\"", hex(RED))), "{line}");
    // The PNG is there, a real one.
    let png = std::fs::read(&p.png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
