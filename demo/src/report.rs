//! The demo's verdict: numbers side by side, and what happened in plain words, drawn from the
//! evidence (fsck findings and the files themselves).

use std::collections::BTreeMap;

use serde::Serialize;
use volume::fsck::{BlockMap, Kind, Report};

use crate::picture::Picture;
use crate::workload::Verification;

#[derive(Debug, Default, Clone, Serialize)]
/// What one placement's run left on the volume, and how fast it went.
pub struct SideReport {
    /// Files the clients said they wrote.
    pub files_written: u64,
    /// Files that should be on the volume.
    pub expected_files: u64,
    /// Files that should be there and are not.
    pub missing: u64,
    /// Files whose contents are not what was written.
    pub wrong_content: u64,
    /// Files that could not be read back.
    pub unreadable: u64,
    /// Damage fsck found.
    pub fsck_errors: u64,
    /// fsck's findings by kind.
    pub fsck_by_kind: BTreeMap<String, u64>,
    /// Operations that failed while the workload ran.
    pub op_errors: u64,
    /// How long the workload took.
    pub seconds: f64,
    /// Its throughput.
    pub mb_per_s: f64,
    /// What the figures mean, in words.
    pub explanations: Vec<String>,
    /// The block map's pictures, when the demo was asked to draw them.
    pub picture: Option<Picture>,
    /// Who holds each block of the image after the run; none if it could not be read.
    #[serde(skip)]
    pub block_map: Option<BlockMap>,
}

#[derive(Debug, Clone, Serialize)]
/// The two placements side by side.
pub struct DemoReport {
    /// Clients writing at once.
    pub clients: usize,
    /// Files each client wrote.
    pub files_per_client: usize,
    /// One server owning the image.
    pub shared: SideReport,
    /// Every client on the image itself.
    pub raw: SideReport,
    /// Metadata through the server, file data by every client on the image itself.
    pub direct: SideReport,
}

impl SideReport {
    /// True if nothing was lost, damaged or unreadable and fsck found nothing.
    pub fn is_perfect(&self) -> bool {
        self.missing == 0
            && self.wrong_content == 0
            && self.unreadable == 0
            && self.fsck_errors == 0
            && self.op_errors == 0
    }
}

fn first(r: &Report, k: Kind) -> Option<&str> {
    r.findings
        .iter()
        .find(|f| f.kind == k)
        .map(|f| f.detail.as_str())
}

/// Plain sentences about what went wrong, each backed by a count and an example.
pub fn explain(r: &Report, v: &Verification) -> Vec<String> {
    let mut out = Vec::new();
    let n = |k: Kind| r.by_kind.get(&k).copied().unwrap_or(0);
    if n(Kind::BlockClaimedTwice) > 0 {
        out.push(format!(
            "{} blocks are held by two files at once ({}): each client allocated them from its own copy of the block bitmap.",
            n(Kind::BlockClaimedTwice),
            first(r, Kind::BlockClaimedTwice).unwrap_or("")
        ));
    }
    if n(Kind::BlockBitmap) + n(Kind::InodeBitmap) > 0 {
        out.push(format!(
            "{} bitmap bits disagree with what is in use: every client wrote back its own bitmap blocks, erasing the others' allocations.",
            n(Kind::BlockBitmap) + n(Kind::InodeBitmap)
        ));
    }
    if n(Kind::BadEntry) > 0 {
        out.push(format!(
            "{} directory entries name free or reused inodes ({}): one client's inode table block overwrote another's.",
            n(Kind::BadEntry),
            first(r, Kind::BadEntry).unwrap_or("")
        ));
    }
    if n(Kind::Orphan) + n(Kind::LinkCount) > 0 {
        out.push(format!(
            "{} inodes are orphaned or miscounted: their directory entries were lost when another client wrote its version of the same directory block.",
            n(Kind::Orphan) + n(Kind::LinkCount)
        ));
    }
    if n(Kind::BadChecksum)
        + n(Kind::BadDirectoryBlock)
        + n(Kind::BadPointer)
        + n(Kind::DirectoryLoop)
        > 0
    {
        out.push(format!(
            "{} metadata blocks are damaged (bad checksums, unparseable directories, wild pointers): blocks one client used for metadata were reused by another for file data.",
            n(Kind::BadChecksum) + n(Kind::BadDirectoryBlock) + n(Kind::BadPointer) + n(Kind::DirectoryLoop)
        ));
    }
    if v.missing > 0 {
        let per: Vec<String> = v
            .missing_by_client
            .iter()
            .enumerate()
            .filter(|(_, m)| **m > 0)
            .map(|(c, m)| format!("client {c}: {m}"))
            .collect();
        out.push(format!(
            "{} files that were written and closed are gone ({}; e.g. {}): the last client to write back a directory block erased the entries the others had added.",
            v.missing,
            per.join(", "),
            v.missing_examples.first().map(String::as_str).unwrap_or("")
        ));
    }
    if v.wrong_content > 0 {
        out.push(format!(
            "{} files hold the wrong bytes (e.g. {}): their blocks were handed to another client's file as well.",
            v.wrong_content,
            v.wrong_examples.first().map(String::as_str).unwrap_or("")
        ));
    }
    if v.unreadable > 0 {
        out.push(format!(
            "{} files or directories cannot be read at all (e.g. {}).",
            v.unreadable,
            v.unreadable_examples
                .first()
                .map(String::as_str)
                .unwrap_or("")
        ));
    }
    out
}

/// A number of a side's report.
type Count = fn(&SideReport) -> u64;

/// The counts compared side by side, in the table's order.
const COUNTS: [(&str, Count); 7] = [
    ("files written", |r| r.files_written),
    ("files expected afterwards", |r| r.expected_files),
    ("files missing", |r| r.missing),
    ("files with wrong content", |r| r.wrong_content),
    ("unreadable files or directories", |r| r.unreadable),
    ("operations failed while writing", |r| r.op_errors),
    ("fsck errors", |r| r.fsck_errors),
];

/// The side-by-side table people read.
pub fn render(d: &DemoReport) -> String {
    let mut s = table(d);
    s.push('\n');
    s.push_str(&verdict(d));
    s
}

/// The numbers: one row per count, one per kind of fsck finding either side has, and the
/// throughput.
fn table(d: &DemoReport) -> String {
    let mut s = String::new();
    let w = 34;
    s.push_str(&format!(
        "\nrwxfs demo: {} clients, {} files each, written at the same time\n\n",
        d.clients, d.files_per_client
    ));
    s.push_str(&format!(
        "{:<w$}{:>18}{:>22}{:>18}\n",
        "", "through the server", "raw shared image", "direct"
    ));
    let sides = [&d.shared, &d.raw, &d.direct];
    let row = |s: &mut String, name: &str, v: [String; 3]| {
        s.push_str(&format!("{name:<w$}{:>18}{:>22}{:>18}\n", v[0], v[1], v[2]))
    };
    for (name, count) in COUNTS {
        row(&mut s, name, sides.map(|r| count(r).to_string()));
    }
    let mut kinds: Vec<&String> = sides.iter().flat_map(|r| r.fsck_by_kind.keys()).collect();
    kinds.sort();
    kinds.dedup();
    let found = |r: &SideReport, k: &String| r.fsck_by_kind.get(k).copied().unwrap_or(0);
    for k in kinds {
        let name = format!("  {}", k.replace('_', " "));
        row(&mut s, &name, sides.map(|r| found(r, k).to_string()));
    }
    let speed = sides.map(|r| format!("{:.1}", r.mb_per_s));
    row(&mut s, "throughput, MiB/s", speed);
    s
}

/// What happened on each side, in words.
fn verdict(d: &DemoReport) -> String {
    let mut s = String::new();
    if d.shared.is_perfect() {
        s.push_str("Through the server: nothing lost, every file exact, fsck clean.\n");
    } else {
        s.push_str("Through the server: DAMAGE — this is a bug in rwxfs:\n");
        for e in &d.shared.explanations {
            s.push_str(&format!("  - {e}\n"));
        }
    }
    if d.raw.is_perfect() {
        s.push_str("Raw shared image: no damage this time (the clients happened not to collide; run again or with more --files).\n");
    } else {
        s.push_str(
            "Raw shared image: each client ran its own copy of the same honest engine, and:\n",
        );
        for e in &d.raw.explanations {
            s.push_str(&format!("  - {e}\n"));
        }
    }
    if d.direct.is_perfect() {
        s.push_str("Direct: nothing lost, every file exact, fsck clean, on the same kind of shared image raw mode breaks.\n");
        s.push_str("  Why: only the server allocates and writes metadata; clients write file data alone, at blocks\n");
        s.push_str("  it reserved for them and maps only once the data is there.\n");
    } else {
        s.push_str("Direct: DAMAGE — this is a bug in rwxfs:\n");
        for e in &d.direct.explanations {
            s.push_str(&format!("  - {e}\n"));
        }
    }
    s
}
