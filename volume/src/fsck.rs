//! fsck: an independent check of an image, read straight from the store (as it will be after
//! journal replay), reporting damage by kind. It never writes and never panics on bad bytes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::attr::FileKind;
use crate::dir::{parse_block, Rec};
use crate::error::{FsError, FsResult};
use crate::inode::{DiskInode, NDIRECT};
use crate::journal;
use crate::layout::{
    get_u32, make_ino, split_ino, verify, Geometry, Superblock, BITS_PER_BITMAP_BLOCK, BLOCK_SIZE,
    INODES_PER_BLOCK, INODE_SIZE, LISTS_SINCE, PTRS_PER_BLOCK, ROOT_INDEX, ROOT_INO,
};
use crate::store::BlockStore;

mod blockmap;
mod lists;
mod report;

pub use blockmap::{block_map, BlockMap, Cell};
pub use report::{Finding, Holders, Kind, Report};

struct Reader<'a, S: BlockStore> {
    store: &'a S,
    overlay: HashMap<u64, Vec<u8>>,
    geo: Geometry,
}

impl<S: BlockStore> Reader<'_, S> {
    fn raw(&self, b: u64) -> FsResult<Vec<u8>> {
        if let Some(img) = self.overlay.get(&b) {
            return Ok(img.clone());
        }
        let mut buf = vec![0u8; BLOCK_SIZE];
        self.store.read_at(&mut buf, b * BLOCK_SIZE as u64)?;
        Ok(buf)
    }
    /// A metadata block; a checksum failure is reported and the block still returned.
    fn meta(&self, b: u64, r: &mut Report, what: &str) -> FsResult<Vec<u8>> {
        let img = self.raw(b)?;
        if !verify(&img, b) {
            r.add(Kind::BadChecksum, format!("{what} block {b}"));
        }
        Ok(img)
    }
}

/// Check the image in `store`. Err only when it cannot be checked at all (not rwxfs, I/O).
/// Passes: bitmaps and the inode table, the blocks each inode holds against the block
/// bitmap, the directory tree from the root, then every inode's links. Every orphan counts
/// as lost (see `check_holding`).
pub fn check<S: BlockStore>(store: &S) -> FsResult<Report> {
    check_holding(store, &Holders::new())
}

/// As `check`, telling an unlinked file `holders` holds open (held: its session may come
/// back, and it is not damage) from one nothing holds (lost: the next start of a server frees
/// it).
pub fn check_holding<S: BlockStore>(store: &S, holders: &Holders) -> FsResult<Report> {
    let mut r = Report::default();
    let Tables {
        rd,
        ibits,
        bbits,
        inodes,
        indexes,
    } = read_tables(store, &mut r)?;
    let maps = check_blocks(&rd, &inodes, &indexes, &bbits, &mut r)?;
    let tree = walk_dirs(&rd, &inodes, &maps, &mut r)?;
    check_links(&inodes, &indexes, &tree, holders, &mut r);
    check_trees(&inodes, &indexes, &mut r);
    // The superblock as replay leaves it: a transaction carries the lists' heads.
    let sb = Superblock::decode(&rd.raw(0)?)?;
    if sb.version >= LISTS_SINCE {
        lists::check_orphan_list(&rd, &sb, &inodes, &indexes, &mut r)?;
        lists::check_tree_list(&rd, &sb, &inodes, &indexes, &mut r)?;
        lists::check_free_counts(&sb, &ibits, &bbits, &mut r);
    }
    Ok(r)
}

/// What every walk of an image reads first: both bitmaps and the inodes in use.
struct Tables<'a, S: BlockStore> {
    rd: Reader<'a, S>,
    ibits: Bitmap,
    bbits: Bitmap,
    /// The inodes in use, by index.
    inodes: HashMap<u32, DiskInode>,
    /// Their indexes, in order.
    indexes: Vec<u32>,
}

/// The image in `store` as it will be after journal replay: a reader of it, its bitmaps and
/// its inodes in use; what is wrong with them is reported.
fn read_tables<'a, S: BlockStore>(store: &'a S, r: &mut Report) -> FsResult<Tables<'a, S>> {
    let rd = reader(store, r)?;
    let geo = rd.geo;
    let ibits = read_bitmap(&rd, geo.ibitmap_start, geo.ibitmap_blocks, r, "inode")?;
    let bbits = read_bitmap(&rd, geo.bbitmap_start, geo.bbitmap_blocks, r, "block")?;
    let inodes = read_inodes(&rd, &ibits, r)?;
    let mut indexes: Vec<u32> = inodes.keys().copied().collect();
    indexes.sort_unstable();
    Ok(Tables {
        rd,
        ibits,
        bbits,
        inodes,
        indexes,
    })
}

/// A reader of the image in `store` as it will be after journal replay; a short image is
/// reported.
fn reader<'a, S: BlockStore>(store: &'a S, r: &mut Report) -> FsResult<Reader<'a, S>> {
    let mut b0 = vec![0u8; BLOCK_SIZE];
    if store.len() < BLOCK_SIZE as u64 {
        return Err(FsError::NotAnImage(format!(
            "only {} bytes long",
            store.len()
        )));
    }
    store.read_at(&mut b0, 0)?;
    let sb = Superblock::decode(&b0)?;
    let geo = sb.geometry;
    let want = geo.total_blocks * BLOCK_SIZE as u64;
    if store.len() < want {
        r.add(
            Kind::Truncated,
            format!("image is {} bytes, superblock says {want}", store.len()),
        );
    }
    let mut overlay = HashMap::new();
    if let Some((_, blocks)) = journal::read_txn(store, &geo, sb.version)? {
        r.journal_replayed = true;
        overlay.extend(blocks);
    }
    Ok(Reader {
        store,
        overlay,
        geo,
    })
}

/// A bitmap's blocks, in order.
type Bitmap = Vec<Vec<u8>>;

fn read_bitmap<S: BlockStore>(
    rd: &Reader<S>,
    start: u64,
    blocks: u64,
    r: &mut Report,
    what: &str,
) -> FsResult<Bitmap> {
    (0..blocks)
        .map(|i| rd.meta(start + i, r, &format!("{what} bitmap")))
        .collect()
}

fn bit(bm: &Bitmap, idx: u64) -> bool {
    let blk = &bm[(idx / BITS_PER_BITMAP_BLOCK) as usize];
    let w = (idx % BITS_PER_BITMAP_BLOCK) as usize;
    blk[w / 8] & (1 << (w % 8)) != 0
}

/// The inodes in use, by index, each checked against the inode bitmap; the root must be a
/// directory.
fn read_inodes<S: BlockStore>(
    rd: &Reader<S>,
    ibits: &Bitmap,
    r: &mut Report,
) -> FsResult<HashMap<u32, DiskInode>> {
    let geo = rd.geo;
    let mut inodes: HashMap<u32, DiskInode> = HashMap::new();
    for tb in 0..geo.itable_blocks {
        let b = geo.itable_start + tb;
        let img = rd.meta(b, r, "inode table")?;
        for k in 0..INODES_PER_BLOCK {
            let index = tb * INODES_PER_BLOCK + k;
            if index >= geo.inode_count || index == 0 {
                continue;
            }
            let off = k as usize * INODE_SIZE;
            let d = DiskInode::decode(&img[off..off + INODE_SIZE]);
            let used = !d.is_free();
            if used != bit(ibits, index) {
                r.add(
                    Kind::InodeBitmap,
                    format!(
                        "inode {index} is {} but its bitmap bit says otherwise",
                        if used { "in use" } else { "free" }
                    ),
                );
            }
            if used {
                inodes.insert(index as u32, d);
            }
        }
    }
    r.inodes_used = inodes.len() as u64;
    if !inodes.get(&ROOT_INDEX).is_some_and(|d| d.is_dir()) {
        r.add(
            Kind::BadEntry,
            "root inode is missing or not a directory".into(),
        );
    }
    Ok(inodes)
}

/// The blocks each inode holds: none held twice, and the block bitmap marks exactly those
/// (and the system area). Returns each directory's logical-to-physical block map.
fn check_blocks<S: BlockStore>(
    rd: &Reader<S>,
    inodes: &HashMap<u32, DiskInode>,
    indexes: &[u32],
    bbits: &Bitmap,
    r: &mut Report,
) -> FsResult<HashMap<u32, Vec<u64>>> {
    let geo = rd.geo;
    let mut claimed: HashMap<u64, u32> = HashMap::new();
    let mut maps: HashMap<u32, Vec<u64>> = HashMap::new();
    for index in indexes {
        let d = &inodes[index];
        let mut claim = |b: u64, r: &mut Report| {
            if let Some(other) = claimed.insert(b, *index) {
                r.add(
                    Kind::BlockClaimedTwice,
                    format!("block {b} held by inode {other} and inode {index}"),
                );
            }
        };
        let mut data = Vec::new();
        walk_file(
            rd,
            d,
            *index,
            r,
            &mut |b, _is_meta, r| claim(b, r),
            &mut data,
        )?;
        if d.xattr != 0 {
            if geo.is_data_block(d.xattr as u64) {
                claim(d.xattr as u64, r);
                rd.meta(d.xattr as u64, r, "xattr")?;
            } else {
                r.add(
                    Kind::BadPointer,
                    format!("inode {index} xattr block {}", d.xattr),
                );
            }
        }
        if d.is_dir() {
            maps.insert(*index, data);
        }
    }
    for b in 0..geo.total_blocks {
        let used = b < geo.data_start || claimed.contains_key(&b);
        if used != bit(bbits, b) {
            r.add(
                Kind::BlockBitmap,
                format!(
                    "block {b} is {} but the bitmap says {}",
                    if used { "in use" } else { "free" },
                    if used { "free" } else { "in use" }
                ),
            );
        }
    }
    r.blocks_used = claimed.len() as u64;
    Ok(maps)
}

/// What the walk of the directory tree found.
#[derive(Default)]
struct Tree {
    /// Entries naming each inode.
    refs: HashMap<u32, u32>,
    /// Subdirectories of each directory.
    subdirs: HashMap<u32, u32>,
    /// Directories reached.
    seen: HashSet<u32>,
}

/// Walk the directory tree from the root, checking every entry; each directory once.
fn walk_dirs<S: BlockStore>(
    rd: &Reader<S>,
    inodes: &HashMap<u32, DiskInode>,
    maps: &HashMap<u32, Vec<u64>>,
    r: &mut Report,
) -> FsResult<Tree> {
    let mut t = Tree::default();
    let mut queue = VecDeque::new();
    if inodes.contains_key(&ROOT_INDEX) {
        queue.push_back(ROOT_INDEX);
        t.seen.insert(ROOT_INDEX);
    }
    while let Some(di) = queue.pop_front() {
        r.directories += 1;
        let nblocks = inodes[&di].size / BLOCK_SIZE as u64;
        let map = maps.get(&di).cloned().unwrap_or_default();
        for lblk in 0..nblocks {
            let Some(&phys) = map.get(lblk as usize).filter(|p| **p != 0) else {
                r.add(
                    Kind::BadDirectoryBlock,
                    format!("directory inode {di} has a hole at block {lblk}"),
                );
                continue;
            };
            let img = rd.meta(phys, r, "directory")?;
            let recs = match parse_block(&img) {
                Ok(recs) => recs,
                Err(e) => {
                    r.add(
                        Kind::BadDirectoryBlock,
                        format!("directory inode {di} block {phys}: {e}"),
                    );
                    continue;
                }
            };
            for rec in recs.into_iter().filter(|x| x.ino != 0) {
                if let Some(sub) = check_entry(inodes, di, &rec, &mut t, r) {
                    queue.push_back(sub);
                }
            }
        }
    }
    Ok(t)
}

/// One entry of directory `di`: it must name an inode in use, of its generation and kind; a
/// directory must be reached once and name `di` its parent. Returns a directory to walk.
fn check_entry(
    inodes: &HashMap<u32, DiskInode>,
    di: u32,
    rec: &Rec,
    t: &mut Tree,
    r: &mut Report,
) -> Option<u32> {
    let name = String::from_utf8_lossy(&rec.name).into_owned();
    let (ci, cgen) = split_ino(rec.ino);
    let ci = if rec.ino == ROOT_INO { ROOT_INDEX } else { ci };
    let Some(child) = inodes.get(&ci) else {
        r.add(
            Kind::BadEntry,
            format!("entry {name:?} in directory {di} names free or invalid inode {ci}"),
        );
        return None;
    };
    if rec.ino != ROOT_INO && cgen != child.generation {
        r.add(Kind::BadEntry, format!("entry {name:?} in directory {di} names inode {ci} generation {cgen}, which now has generation {}", child.generation));
        return None;
    }
    if FileKind::from_code(rec.kind) != child.kind() {
        r.add(
            Kind::BadEntry,
            format!("entry {name:?} in directory {di}: kind differs from inode {ci}"),
        );
    }
    let dir_tree = inodes.get(&di).map_or(0, |d| d.tree);
    if crate::quota::may_enter(child.tree, ci, dir_tree).is_err() {
        r.add(
            Kind::QuotaTree,
            format!(
                "entry {name:?} in directory {di} (quota tree {dir_tree}) names inode {ci} of tree {}",
                child.tree
            ),
        );
    }
    *t.refs.entry(ci).or_insert(0) += 1;
    if !child.is_dir() {
        r.files += 1;
        return None;
    }
    *t.subdirs.entry(di).or_insert(0) += 1;
    if !t.seen.insert(ci) {
        r.add(
            Kind::DirectoryLoop,
            format!("directory inode {ci} is reachable twice (again as {name:?} in {di})"),
        );
        return None;
    }
    let parent_index = if child.parent == ROOT_INO {
        ROOT_INDEX
    } else {
        split_ino(child.parent).0
    };
    if parent_index != di {
        r.add(
            Kind::DirectoryLoop,
            format!(
                "directory inode {ci} ({name:?}) says its parent is {parent_index}, found in {di}"
            ),
        );
    }
    Some(ci)
}

/// Every inode's quota tree has a root that says so, and no tree holds more than its limits.
fn check_trees(inodes: &HashMap<u32, DiskInode>, indexes: &[u32], r: &mut Report) {
    let mut used: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for index in indexes {
        let d = &inodes[index];
        if d.tree == 0 {
            continue;
        }
        if !inodes
            .get(&d.tree)
            .is_some_and(|root| root.tree == d.tree && root.is_dir())
        {
            r.add(
                Kind::QuotaTree,
                format!(
                    "inode {index} is in quota tree {}, which has no root",
                    d.tree
                ),
            );
            continue;
        }
        let u = used.entry(d.tree).or_default();
        u.0 += d.blocks;
        u.1 += 1;
    }
    for (root, (blocks, count)) in used {
        let q = inodes[&root].quota;
        if blocks > q.max_blocks || count > q.max_inodes {
            r.add(
                Kind::QuotaTree,
                format!(
                    "quota tree {root} holds {blocks} blocks and {count} inodes, past its \
                     limits of {} and {}",
                    q.max_blocks, q.max_inodes
                ),
            );
        }
    }
}

/// An inode in use that no directory names: held, if it is unlinked and a session that may
/// come back holds it open; lost otherwise.
fn orphan(index: u32, d: &DiskInode, holders: &Holders, r: &mut Report) {
    let held = holders.get(&make_ino(index, d.generation));
    match held.filter(|_| d.nlink == 0) {
        Some(who) => {
            r.held_orphans += 1;
            let detail = format!(
                "inode {index} is unlinked and held open by {who}: freed at its last close, \
                 or when that session ends"
            );
            r.add_held(Kind::Orphan, detail, Some(who.clone()));
        }
        None if d.nlink == 0 => r.add(
            Kind::Orphan,
            format!(
                "inode {index} is unlinked and no session holds it open: lost (the next \
                 start of a server frees it)"
            ),
        ),
        None => r.add(
            Kind::Orphan,
            format!(
                "inode {index} (nlink {}) is in use but no directory names it: lost",
                d.nlink
            ),
        ),
    }
}

/// Every inode in use is named, and its link count is the number of names (for a directory,
/// 2 and one per subdirectory).
fn check_links(
    inodes: &HashMap<u32, DiskInode>,
    indexes: &[u32],
    t: &Tree,
    holders: &Holders,
    r: &mut Report,
) {
    for index in indexes {
        let d = &inodes[index];
        if *index != ROOT_INDEX && !t.refs.contains_key(index) && !t.seen.contains(index) {
            orphan(*index, d, holders, r);
            continue;
        }
        let expect = if d.is_dir() {
            2 + t.subdirs.get(index).copied().unwrap_or(0)
        } else {
            t.refs.get(index).copied().unwrap_or(0)
        };
        if d.nlink != expect {
            r.add(
                Kind::LinkCount,
                format!(
                    "inode {index} has link count {} but {expect} links",
                    d.nlink
                ),
            );
        }
    }
}

/// Visit every block of a file (`f(block, is_indirect)`), checking pointers; for directories,
/// collect the logical→physical map of the first blocks into `data`.
fn walk_file<S: BlockStore>(
    rd: &Reader<S>,
    d: &DiskInode,
    index: u32,
    r: &mut Report,
    f: &mut dyn FnMut(u64, bool, &mut Report),
    data: &mut Vec<u64>,
) -> FsResult<()> {
    let geo = rd.geo;
    let want_map = d.is_dir();
    for (i, p) in d.direct.iter().enumerate() {
        let p = *p as u64;
        if p == 0 {
            continue;
        }
        if !geo.is_data_block(p) {
            r.add(
                Kind::BadPointer,
                format!("inode {index} direct block {i} points at {p}"),
            );
            continue;
        }
        f(p, false, r);
        if want_map {
            if data.len() <= i {
                data.resize(i + 1, 0);
            }
            data[i] = p;
        }
    }
    let mut base = NDIRECT as u64;
    let mut span = PTRS_PER_BLOCK;
    for (level, root) in [(1u32, d.ind), (2, d.dind), (3, d.tind)] {
        if root != 0 {
            walk_tree(rd, root as u64, level, base, index, r, f, data, want_map)?;
        }
        base += span;
        span *= PTRS_PER_BLOCK;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn walk_tree<S: BlockStore>(
    rd: &Reader<S>,
    ptr: u64,
    level: u32,
    base: u64,
    index: u32,
    r: &mut Report,
    f: &mut dyn FnMut(u64, bool, &mut Report),
    data: &mut Vec<u64>,
    want_map: bool,
) -> FsResult<()> {
    if !rd.geo.is_data_block(ptr) {
        r.add(
            Kind::BadPointer,
            format!("inode {index} indirect block points at {ptr}"),
        );
        return Ok(());
    }
    f(ptr, true, r);
    let img = rd.meta(ptr, r, "indirect")?;
    let span = PTRS_PER_BLOCK.pow(level - 1);
    for i in 0..PTRS_PER_BLOCK as usize {
        let p = get_u32(&img, i * 4) as u64;
        if p == 0 {
            continue;
        }
        let cbase = base + i as u64 * span;
        if level == 1 {
            if !rd.geo.is_data_block(p) {
                r.add(
                    Kind::BadPointer,
                    format!("inode {index} block {cbase} points at {p}"),
                );
                continue;
            }
            f(p, false, r);
            if want_map && cbase < 1 << 20 {
                let c = cbase as usize;
                if data.len() <= c {
                    data.resize(c + 1, 0);
                }
                data[c] = p;
            }
        } else {
            walk_tree(rd, p, level - 1, cbase, index, r, f, data, want_map)?;
        }
    }
    Ok(())
}
