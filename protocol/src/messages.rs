//! One vocabulary: every message either side sends. Enums are encoded by variant index, so
//! they are append-only: new variants go at the end, and golden-byte tests pin the encoding.

use serde::{Deserialize, Serialize};
use volume::{Attr, DirEntry, SetAttr, StatFs};

pub const PROTOCOL_VERSION: u32 = 1;

/// From client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// First message on a connection.
    Hello {
        version: u32,
        node_id: String,
        mount_id: u64,
        read_only: bool,
    },
    /// An operation; `id` matches the reply. Bulk data (Write) follows the header raw.
    Call { id: u64, req: Request },
    /// Keeps the session's lease alive.
    Heartbeat,
    /// First message on a connection that replaces a lost one: the session continues if the
    /// server still holds it (its open files and the replies to calls it may not have
    /// received); otherwise the server starts a new one, as for `Hello`.
    Resume {
        version: u32,
        node_id: String,
        mount_id: u64,
        read_only: bool,
        session: u64,
    },
    /// The client has the replies to every call with an id below `below`: the server may
    /// forget them.
    Ack { below: u64 },
    /// The client is unmounting: end the session now rather than at the end of its lease.
    Goodbye,
}

/// From server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    Welcome {
        version: u32,
        session: u64,
        lease_secs: u32,
    },
    Refused {
        reason: String,
    },
    /// Reply to `Call { id }`: a response, or an errno. Read data follows the header raw.
    Reply {
        id: u64,
        result: Result<Response, i32>,
    },
    /// Unrequested news from the server.
    Push(Push),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Push {
    /// Cached attributes and data of this inode are stale.
    InvalInode { ino: u64 },
    /// A name in a directory changed.
    InvalEntry { parent: u64, name: Vec<u8> },
    /// The server is going away; reconnect later.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Lookup {
        parent: u64,
        name: Vec<u8>,
    },
    Getattr {
        ino: u64,
    },
    Setattr {
        ino: u64,
        set: SetAttr,
    },
    Mknod {
        parent: u64,
        name: Vec<u8>,
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    },
    Mkdir {
        parent: u64,
        name: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        parent: u64,
        name: Vec<u8>,
        target: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    Link {
        ino: u64,
        newparent: u64,
        newname: Vec<u8>,
    },
    Unlink {
        parent: u64,
        name: Vec<u8>,
    },
    Rmdir {
        parent: u64,
        name: Vec<u8>,
    },
    Rename {
        parent: u64,
        name: Vec<u8>,
        newparent: u64,
        newname: Vec<u8>,
        noreplace: bool,
        exchange: bool,
    },
    Readlink {
        ino: u64,
    },
    Readdir {
        ino: u64,
        offset: u64,
        max: u32,
    },
    Readdirplus {
        ino: u64,
        offset: u64,
        max: u32,
    },
    Create {
        parent: u64,
        name: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Open {
        ino: u64,
        flags: i32,
    },
    Release {
        ino: u64,
    },
    Read {
        ino: u64,
        offset: u64,
        size: u32,
    },
    /// Data follows the header raw.
    Write {
        ino: u64,
        offset: u64,
    },
    Fsync {
        ino: u64,
    },
    Fallocate {
        ino: u64,
        offset: u64,
        len: u64,
        mode: u32,
    },
    Statfs,
    Getxattr {
        ino: u64,
        name: Vec<u8>,
    },
    Setxattr {
        ino: u64,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: u32,
    },
    Listxattr {
        ino: u64,
    },
    Removexattr {
        ino: u64,
        name: Vec<u8>,
    },
    /// Data follows the header raw; written at the file's end as the server sees it.
    Append {
        ino: u64,
    },
}

impl Request {
    /// True for operations that change the volume (refused on read-only sessions).
    pub fn mutates(&self) -> bool {
        !matches!(
            self,
            Request::Lookup { .. }
                | Request::Getattr { .. }
                | Request::Readlink { .. }
                | Request::Readdir { .. }
                | Request::Readdirplus { .. }
                | Request::Open { .. }
                | Request::Release { .. }
                | Request::Read { .. }
                | Request::Fsync { .. }
                | Request::Statfs
                | Request::Getxattr { .. }
                | Request::Listxattr { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Empty,
    Attr(Attr),
    Entries(Vec<DirEntry>),
    EntriesPlus(Vec<(DirEntry, Attr)>),
    /// Read data follows the header raw.
    Data,
    Written(u32),
    Bytes(Vec<u8>),
    Names(Vec<Vec<u8>>),
    StatFs(StatFs),
}
