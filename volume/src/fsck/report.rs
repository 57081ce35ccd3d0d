//! What fsck reports: the kinds of damage, each finding, and the counts of a check.

use std::collections::BTreeMap;

use serde::Serialize;

/// A kind of damage fsck finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A metadata block whose checksum does not match.
    BadChecksum,
    /// One block held by two files (or twice by one).
    BlockClaimedTwice,
    /// Block bitmap says free for a used block, or used for a free one.
    BlockBitmap,
    /// Inode bitmap disagrees with the inode table.
    InodeBitmap,
    /// A directory entry names a free, reused or out-of-range inode, or the wrong kind.
    BadEntry,
    /// An inode's link count differs from the entries naming it.
    LinkCount,
    /// An inode in use that no directory names.
    Orphan,
    /// A directory reachable twice, or whose `..` names another directory.
    DirectoryLoop,
    /// A block pointer outside the data area.
    BadPointer,
    /// A directory block whose records do not parse.
    BadDirectoryBlock,
    /// The image is shorter than its superblock says.
    Truncated,
    /// An inode in a quota tree whose root is no tree's root, a name that crosses from one
    /// tree into another, or a tree holding more than its limits; a tree's root off the
    /// list of trees, a member of it that is no root, or a root whose kept use is not what
    /// its tree holds (`rwxfs fsck --repair` mends these three).
    QuotaTree,
    /// The on-disk list of files unlinked while open: a file with no link left that is not
    /// on it (the next open would never free it), a member that is not such a file, or a
    /// list running outside the inode table or in a loop (`rwxfs fsck --repair` mends it).
    OrphanList,
}

/// One piece of damage.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// Where, and what was found.
    pub detail: String,
    /// For an `Orphan` a session that may come back holds open (`check_holding`): who.
    /// Such an orphan is not damage: it is freed at its last close, or when its session ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// Who holds unlinked files open, by inode number (index and generation, as clients know
/// it): the sessions a server's session log keeps, which may come back.
pub type Holders = BTreeMap<u64, String>;

/// What a check found, and what it counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Details, up to a bound per kind.
    pub findings: Vec<Finding>,
    /// Every finding counted, by kind.
    pub by_kind: BTreeMap<Kind, u64>,
    /// Inodes in use.
    pub inodes_used: u64,
    /// Blocks in use.
    pub blocks_used: u64,
    /// Directories.
    pub directories: u64,
    /// Non-directories.
    pub files: u64,
    /// The journal held a transaction, checked as if replayed.
    pub journal_replayed: bool,
    /// Orphans held open by a session that may come back: counted under `Orphan`, but not
    /// damage (`errors` leaves them out).
    pub held_orphans: u64,
}

/// Details kept per kind; counts are always complete.
const DETAILS_PER_KIND: u64 = 50;

impl Report {
    pub(super) fn add(&mut self, kind: Kind, detail: String) {
        self.add_held(kind, detail, None);
    }
    pub(super) fn add_held(&mut self, kind: Kind, detail: String, held_by: Option<String>) {
        let n = self.by_kind.entry(kind).or_insert(0);
        *n += 1;
        if *n <= DETAILS_PER_KIND {
            self.findings.push(Finding {
                kind,
                detail,
                held_by,
            });
        }
    }
    /// Findings in all, but for orphans held by a session that may come back.
    pub fn errors(&self) -> u64 {
        self.by_kind.values().sum::<u64>() - self.held_orphans
    }
    /// True if nothing was found.
    pub fn is_clean(&self) -> bool {
        self.errors() == 0
    }
    /// e2fsck's convention: 0 clean, 4 errors left uncorrected.
    pub fn exit_code(&self) -> i32 {
        if self.is_clean() {
            0
        } else {
            4
        }
    }
}
