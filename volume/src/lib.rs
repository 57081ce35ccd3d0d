//! The rwxfs engine: one file system on one block store, correct as long as it is the image's
//! only writer. Synchronous, no threads, no network; generic over where its blocks live.
//!
//! Nothing here knows whether it runs behind the server or directly on a shared image.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod attr;
mod bmap;
mod cache;
mod chain;
mod dir;
pub mod error;
pub mod fs;
pub mod fsck;
mod inode;
mod journal;
pub mod layout;
pub mod mkfs;
pub mod quota;
pub mod shared;
pub mod store;
mod xattr;

pub use attr::{Attr, DirEntry, FileKind, Ino, SetAttr, StatFs, TimeSpec};
pub use cache::PreparedCommit;
pub use error::{FsError, FsResult};
pub use fs::{
    CommitHook, DurabilityHook, Extent, Layout, ReadPlan, RenameFlags, Volume, WritePlan,
};
pub use mkfs::{mkfs, MkfsOptions};
pub use quota::{Quota, Usage};
pub use shared::SharedVolume;
pub use store::{BlockStore, FileStore, LateStore, MemStore};
