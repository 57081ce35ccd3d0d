//! A direct mount's volume in Ceph RADOS: the server's own store (`rados_store::RadosStore`)
//! opened by the mount as a client of the cluster in its own right, so volume addresses map
//! to objects exactly as they do on the server, and "durable" means what it means there:
//! every write issued before acknowledged by the OSDs.
//!
//! The mount's RADOS client has an address of its own (`IP:PORT/NONCE`), which it tells the
//! server: a mount that loses its layouts without giving them back is blocklisted there, and
//! from then on the cluster refuses everything it sends. Such a refusal (`EBLOCKLISTED`) is
//! reported as EIO, and the mount says once in its log that it was fenced.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use rados_store::{CephOptions, Cluster, ImageName, RadosStore};
use volume::BlockStore;

use super::store::DataStore;

/// What librados answers a client the cluster has blocklisted (`EBLOCKLISTED`, ESHUTDOWN).
const BLOCKLISTED: i32 = libc::ESHUTDOWN;

/// A RADOS volume as a direct mount reads and writes it.
pub(super) struct RadosVolume {
    store: RadosStore,
    address: String,
    fenced: AtomicBool,
}

impl RadosVolume {
    /// Connect to the cluster as `ceph` says and open the volume `name` of `pool`.
    pub(super) fn open(
        pool: &str,
        name: &str,
        ceph: &CephOptions,
        read_only: bool,
    ) -> Result<RadosVolume, String> {
        let image = ImageName {
            pool: pool.to_string(),
            name: name.to_string(),
        };
        let cluster = Cluster::connect(ceph).map_err(|e| format!("{image}: {e}"))?;
        let address = cluster
            .addr()
            .map_err(|e| format!("{image}: this mount's RADOS address: {e}"))?;
        let pool = cluster.pool(pool).map_err(|e| e.to_string())?;
        let store = RadosStore::open_in(pool, &image, read_only).map_err(|e| e.to_string())?;
        tracing::info!("{image}: file data read and written as RADOS client {address}");
        Ok(RadosVolume {
            store,
            address,
            fenced: AtomicBool::new(false),
        })
    }

    /// A blocklisted client's refusal as EIO, noted once.
    fn seen(&self, r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if e.raw_os_error() == Some(BLOCKLISTED) => {
                if !self.fenced.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "{}: this mount was fenced (its RADOS client {} is blocklisted): it \
                         lost its layouts without giving them back; no file data can be read \
                         or written through it any more: unmount it and mount again",
                        self.store.name(),
                        self.address
                    );
                }
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
            r => r,
        }
    }
}

impl DataStore for RadosVolume {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.seen(BlockStore::read_at(&self.store, buf, at))
    }

    fn write_at(&self, data: &[u8], at: u64) -> io::Result<()> {
        self.seen(BlockStore::write_at(&self.store, data, at))
    }

    fn make_durable(&self) -> io::Result<()> {
        self.seen(self.store.flush())
    }

    fn client_address(&self) -> Option<&str> {
        Some(&self.address)
    }
}
