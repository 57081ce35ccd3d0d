//! `rados://POOL/NAME` images on the command line: `--ceph-conf` and `--ceph-id`, and what
//! mkfs, fsck and serve do differently for them (connect, the header object, no local lock).

use std::path::{Path, PathBuf};

use rados_store::{CephOptions, Cluster, Header, Hold, ImageName, RadosStore, DEFAULT_OBJECT_SIZE};
use volume::mkfs::has_rwxfs_signature;

/// How to reach Ceph for a `rados://` image.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CephArgs {
    /// Ceph configuration file, for rados://POOL/NAME images (default: $CEPH_CONF, then
    /// Ceph's own search: /etc/ceph/ceph.conf, ~/.ceph/ceph.conf, ./ceph.conf).
    #[arg(long, value_name = "FILE")]
    pub ceph_conf: Option<PathBuf>,
    /// Ceph client id, for rados:// images (default: admin, i.e. client.admin).
    #[arg(long, value_name = "ID")]
    pub ceph_id: Option<String>,
}

impl CephArgs {
    pub fn options(&self) -> CephOptions {
        CephOptions {
            conf: self.ceph_conf.clone(),
            id: self.ceph_id.clone(),
        }
    }
}

/// The RADOS image `image` names, `None` for a local path; an error for a malformed
/// `rados://` name.
pub fn name(image: &Path) -> Result<Option<ImageName>, String> {
    ImageName::parse(&image.to_string_lossy()).map_err(|e| e.to_string())
}

/// Open a RADOS image for the engine.
pub fn open(name: &ImageName, ceph: &CephArgs, read_only: bool) -> Result<RadosStore, String> {
    RadosStore::open(name, &ceph.options(), read_only).map_err(|e| e.to_string())
}

/// `rwxfs mkfs rados://POOL/NAME --size SIZE`: the image's objects (an old image's removed
/// first, with --force), then the volume in them.
pub fn mkfs(
    name: &ImageName,
    ceph: &CephArgs,
    size: Option<&str>,
    force: bool,
    inodes: Option<u64>,
) -> Result<String, String> {
    let size = size.ok_or("--size is required for a RADOS image (e.g. --size 100G)")?;
    let size = super::mkfs_cmd::parse_size(size)?;
    let cluster = Cluster::connect(&ceph.options()).map_err(|e| e.to_string())?;
    let pool = || cluster.pool(&name.pool).map_err(|e| e.to_string());
    if !force {
        match RadosStore::open_in(pool()?, name, true) {
            Ok(old) if has_rwxfs_signature(&old).map_err(|e| e.to_string())? => {
                return Err(format!(
                    "{name} already holds an rwxfs volume; add --force to overwrite it"
                ))
            }
            Ok(_)
            | Err(rados_store::RadosError::NoImage(_))
            | Err(rados_store::RadosError::Unfinished(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let hold = hold(&cluster, name, "mkfs")?;
    let header = Header {
        size,
        object_size: DEFAULT_OBJECT_SIZE,
    };
    // Every write stops once the hold may have lapsed: a server may have taken the volume.
    rados_store::create_while(&pool()?, name, header, &|| hold.ensure())
        .map_err(|e| e.to_string())?;
    let store = RadosStore::open_in(pool()?, name, false).map_err(|e| e.to_string())?;
    let store = hold.guard(store);
    let made = super::mkfs_cmd::format(&store, &name.to_string(), inodes)?;
    drop(store);
    hold.release()
        .map_err(|e| format!("{name}: made, but its hold not let go ({e}): it lapses in 10 s"))?;
    Ok(made)
}

/// Hold the volume for `tool` (`rados_store::Hold`): refused, with who holds it, while a
/// server owns it.
pub fn hold(
    cluster: &std::sync::Arc<Cluster>,
    name: &ImageName,
    tool: &str,
) -> Result<Hold, String> {
    let about = format!(
        "rwxfs {tool}, pid {} on {}",
        std::process::id(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "a host".into())
    );
    match Hold::take(cluster, name, &about).map_err(|e| e.to_string())? {
        Ok(h) => Ok(h),
        Err(who) => Err(format!(
            "{name} is in use: held by {who}; stop its servers (active and standby) to {tool} it"
        )),
    }
}
