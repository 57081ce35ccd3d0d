//! `rwxfs mkfs IMAGE --size 4G`

use std::fs::OpenOptions;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use volume::mkfs::has_rwxfs_signature;
use volume::{mkfs, BlockStore, FileStore, FsError, MkfsOptions};

use super::rados_cmd::{self, CephArgs};

/// Parse `4G`, `512M`, `100K`, `1T` or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size {s:?}: expected a number with K/M/G/T suffix, e.g. 4G"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

pub fn run(
    image: &Path,
    ceph: &CephArgs,
    size: Option<&str>,
    force: bool,
    inodes: Option<u64>,
) -> i32 {
    let made = match rados_cmd::name(image) {
        Ok(Some(name)) => rados_cmd::mkfs(&name, ceph, size, force, inodes),
        Ok(None) => mkfs_image(image, size, force, inodes),
        Err(e) => Err(e),
    };
    match made {
        Ok(msg) => {
            println!("{msg}");
            0
        }
        Err(e) => {
            eprintln!("rwxfs mkfs: {e}");
            1
        }
    }
}

fn mkfs_image(
    image: &Path,
    size: Option<&str>,
    force: bool,
    inodes: Option<u64>,
) -> Result<String, String> {
    let is_dev = std::fs::metadata(image)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    let size = match (size, is_dev) {
        (Some(s), false) => Some(parse_size(s)?),
        (None, false) => return Err("--size is required for an image file (e.g. --size 4G)".into()),
        (_, true) => None,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(!is_dev)
        .truncate(false)
        .open(image)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let store = FileStore::from_file(file.try_clone().map_err(|e| e.to_string())?);
    if !force && has_rwxfs_signature(&store).map_err(|e| e.to_string())? {
        return Err(format!(
            "{} already holds an rwxfs volume; add --force to overwrite it",
            image.display()
        ));
    }
    if let Some(size) = size {
        file.set_len(0).map_err(|e| e.to_string())?;
        file.set_len(size)
            .map_err(|e| format!("{}: {e}", image.display()))?;
    }
    format(&store, &image.display().to_string(), inodes)
}

/// Make the volume on `store` (already sized); the line that describes it.
pub fn format(store: &impl BlockStore, shown: &str, inodes: Option<u64>) -> Result<String, String> {
    let geo = mkfs(
        store,
        &MkfsOptions {
            inodes,
            force: true,
            ..Default::default()
        },
    )
    .map_err(|e| match e {
        FsError::NoSpace => "size too small for an rwxfs volume (at least a few MiB)".to_string(),
        FsError::Invalid => "size too large (at most 16 TiB)".to_string(),
        e => e.to_string(),
    })?;
    Ok(format!(
        "rwxfs: {shown}: {} MiB, {} data blocks of 4 KiB, {} inodes, journal {} blocks",
        (geo.total_blocks * 4096) >> 20,
        geo.data_blocks(),
        geo.inode_count - 2,
        geo.journal_blocks
    ))
}
