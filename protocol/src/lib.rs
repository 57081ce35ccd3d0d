//! The rwxfs wire protocol: messages, framing and the version handshake. No policy, no engine.
//!
//! A frame is a 4-byte big-endian length, then a 4-byte little-endian header length, the
//! bincode header, and raw bulk bytes (write data, read data) that never pass through serde.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod answer;
pub mod auth;
mod calls;
pub mod codec;
mod engine_types;
pub mod error_code;
pub mod exports;
mod inodes;
pub mod messages;
pub mod meta;
#[cfg(test)]
mod samples;
pub mod wire;

pub use answer::{Answer, LockState};
pub use codec::{decode_body, encode_frame, ProtoError, MAX_FRAME};
pub use error_code::ErrorCode;
pub use exports::{AccessMode, ExportCmd, ExportInfo, VolumeSpace};
pub use messages::{
    ClientMsg, Cred, Push, Request, Response, ServerMsg, SessionStatus, MAX_GROUPS,
    PROTOCOL_VERSION,
};
pub use meta::{Access, Entries, Meta, Moves, Opens};
pub use wire::{
    Attr, DirEntry, Extent, FileKind, Layout, LockKind, LockRange, RenameFlags, SetAttr, SetTime,
    StatFs, TimeSpec, VolumeAt,
};
