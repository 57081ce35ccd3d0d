//! The rwxfs FUSE client: a thin `fuser::Filesystem` over a `Backend` — `Raw` (the engine,
//! in this process, on an image), `Remote` (the server, over the protocol) or `Direct` (the
//! server for metadata, the shared image itself for file data).

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod backend;
pub mod caller;
pub mod direct;
pub mod fuse;
mod kept;
pub mod link;
pub mod mount;
pub mod raw;
pub mod remote;
pub mod signals;
pub mod transport;
pub mod write_behind;

pub use backend::Backend;
pub use direct::DirectBackend;
pub use fuse::RwxFuse;
pub use mount::{mount_foreground, MountConfig, MountFlags};
pub use raw::RawBackend;
pub use remote::RemoteBackend;
