//! The rwxfs volume in Ceph RADOS: the image striped over fixed-size objects, as RBD does
//! (`NAME.<index, 16 hex digits>` plus `NAME.header`), as a `BlockStore`, so the engine does
//! not learn where it runs. librados is loaded at run time (`ffi`): building needs no Ceph.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod cluster;
mod fence;
mod ffi;
mod hold;
mod image;
mod name;
mod objects;
mod owner;
mod store;

use std::io;

pub use cluster::{CephOptions, Cluster, Pending, Pool};
pub use hold::{Held, Hold, HOLD_LEASE};
pub use image::{create, create_while, Header, DEFAULT_OBJECT_SIZE};
pub use name::{ImageName, SCHEME};
pub use objects::{LockSpec, Locked, Locker};
pub use owner::{fenced, Claim, Owner, Renewal, FENCE_FOR, OWNER_LOCK};
pub use store::RadosStore;

/// What can go wrong reaching a RADOS image, each condition with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RadosError {
    /// librados could not be loaded; the message says how to install it.
    #[error("{0}")]
    NoLibrary(String),
    #[error("{0:?} is not a RADOS image name: expected rados://POOL/NAME")]
    /// The name is not rados://POOL/NAME.
    BadName(String),
    #[error("Ceph configuration ({conf}): {source}; name one with --ceph-conf FILE or CEPH_CONF")]
    /// The Ceph configuration could not be read.
    Config {
        /// The configuration file.
        conf: String,
        /// Why it could not be read.
        source: io::Error,
    },
    #[error("cannot connect to the Ceph cluster as {id} (configuration: {conf}): {source}")]
    /// The cluster refused the connection, or could not be reached.
    Connect {
        /// The Ceph user connected as.
        id: String,
        /// The configuration file used.
        conf: String,
        /// What librados said.
        source: io::Error,
    },
    #[error("pool {0:?} does not exist in the Ceph cluster (create it: ceph osd pool create {0})")]
    /// The pool does not exist.
    NoPool(String),
    #[error("{0}: no rwxfs image there (make one: rwxfs mkfs {0} --size SIZE)")]
    /// No image of that name in the pool.
    NoImage(ImageName),
    #[error(
        "{0}: an rwxfs mkfs of this image was interrupted: make it again (rwxfs mkfs {0} --size SIZE)"
    )]
    /// A mkfs of this image began and did not finish: its objects are being replaced.
    Unfinished(ImageName),
    #[error("{0}: its header object is not an rwxfs image header: {1}")]
    /// The header object is not an rwxfs image's.
    BadHeader(ImageName, String),
    #[error("{0}: {1}")]
    /// An object's read or write failed: which, and why.
    Io(String, io::Error),
}
