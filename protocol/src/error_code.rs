//! Errors on the wire: a numeric code per condition. The codes are Linux's errno numbers for
//! those conditions (as NFS's status codes are), written out here rather than taken from the
//! build's libc, so the wire never follows a platform. Append-only: a code, once given, keeps
//! its number; a new condition gets a new code. A code the receiver does not know (a newer
//! peer's) reads as `Io`. The one conversion from and to the engine's `FsError` is in
//! `engine_types`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a call failed, as the wire says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    NotPermitted = 1,
    NotFound = 2,
    Interrupted = 4,
    /// An I/O error, damaged metadata, or a code this side does not know.
    Io = 5,
    WouldBlock = 11,
    AccessDenied = 13,
    Exists = 17,
    NotDir = 20,
    IsDir = 21,
    Invalid = 22,
    FileTooBig = 27,
    NoSpace = 28,
    ReadOnly = 30,
    TooManyLinks = 31,
    Range = 34,
    Deadlock = 35,
    NameTooLong = 36,
    NoLock = 37,
    NotEmpty = 39,
    NoAttr = 61,
    NotSupported = 95,
    Stale = 116,
}

impl ErrorCode {
    /// Every code, in the order of their numbers.
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::NotPermitted,
        ErrorCode::NotFound,
        ErrorCode::Interrupted,
        ErrorCode::Io,
        ErrorCode::WouldBlock,
        ErrorCode::AccessDenied,
        ErrorCode::Exists,
        ErrorCode::NotDir,
        ErrorCode::IsDir,
        ErrorCode::Invalid,
        ErrorCode::FileTooBig,
        ErrorCode::NoSpace,
        ErrorCode::ReadOnly,
        ErrorCode::TooManyLinks,
        ErrorCode::Range,
        ErrorCode::Deadlock,
        ErrorCode::NameTooLong,
        ErrorCode::NoLock,
        ErrorCode::NotEmpty,
        ErrorCode::NoAttr,
        ErrorCode::NotSupported,
        ErrorCode::Stale,
    ];

    /// The code's number on the wire.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The condition a number names; `Io` for one this side does not know.
    pub fn from_code(code: u32) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .unwrap_or(ErrorCode::Io)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
        u32::deserialize(d).map(ErrorCode::from_code)
    }
}
