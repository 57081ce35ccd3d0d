//! One vocabulary: every message either side sends. Enums are encoded by variant index, so
//! they are append-only: new variants go at the end, and golden-byte tests pin the encoding.

use serde::{Deserialize, Serialize};

use crate::error_code::ErrorCode;
use crate::wire::{Attr, DirEntry, LockKind, LockRange, RenameFlags, SetAttr, StatFs};

pub const PROTOCOL_VERSION: u32 = 3;

/// From client to server.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// First message on a connection. `nonce`: the client's challenge to the server (see
    /// `ServerMsg::Challenge`).
    Hello {
        version: u32,
        node_id: String,
        mount_id: u64,
        read_only: bool,
        nonce: Vec<u8>,
    },
    /// An operation; `id` matches the reply. Bulk data (Write) follows the header raw.
    Call { id: u64, req: Request },
    /// Keeps the session's lease alive.
    Heartbeat,
    /// First message on a connection that replaces a lost one: the session continues if the
    /// server still holds it (its open files and the replies to calls it may not have
    /// received); otherwise the server starts a new one, as for `Hello`. `secret` is the one
    /// `Welcome` issued with the session: without it the session is not resumed.
    Resume {
        version: u32,
        node_id: String,
        mount_id: u64,
        read_only: bool,
        session: u64,
        secret: Vec<u8>,
        nonce: Vec<u8>,
    },
    /// The client has the replies to every call with an id below `below`: the server may
    /// forget them.
    Ack { below: u64 },
    /// The client is unmounting: end the session now rather than at the end of its lease.
    Goodbye,
    /// The answer to `ServerMsg::Challenge`: HMAC-SHA256 of the challenge under the shared
    /// token (`auth::proof`). The token itself never travels.
    Proof { mac: Vec<u8> },
    /// First message of a `rwxfs status` connection: list the sessions, then close.
    Status { version: u32, nonce: Vec<u8> },
    /// `Call` made on behalf of `cred`. A plain `Call` is anonymous (nobody).
    CallAs { id: u64, req: Request, cred: Cred },
}

/// Most supplementary groups a call carries (as NFS's AUTH_SYS).
pub const MAX_GROUPS: usize = 16;

/// Who makes a call, as the client's kernel says: the server squashes it per its export and
/// checks every call's permissions with it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, at most `MAX_GROUPS`.
    pub groups: Vec<u32>,
}

/// From server to client.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    Welcome {
        version: u32,
        session: u64,
        lease_secs: u32,
        /// Differs for every start of the server: a client that sees it change knows the
        /// server restarted, and reclaims its locks (`ReclaimLock`) if its session survived.
        boot: u64,
        /// The session's secret, needed to resume it (`Resume::secret`): sent when the
        /// session is created, empty when it is resumed.
        secret: Vec<u8>,
        /// The server before this one stopped cleanly (SIGTERM): it committed everything
        /// and this one restored every kept reply and open file exactly; nothing any client
        /// sent it was lost, so nothing needs replaying.
        clean_restart: bool,
    },
    Refused {
        reason: String,
    },
    /// Reply to `Call { id }`: a response, or why not. Read data follows the header raw.
    Reply {
        id: u64,
        result: Result<Response, ErrorCode>,
    },
    /// Unrequested news from the server.
    Push(Push),
    /// Prove you hold the export's token: answer with `ClientMsg::Proof`. `mac` is the
    /// server's own proof, over the client's nonce (`auth::server_proof`): a client refuses a
    /// server that cannot give it, before it proves anything itself.
    Challenge {
        nonce: Vec<u8>,
        mac: Vec<u8>,
    },
    /// The mount must wait (an RWOP volume in use); `Welcome` follows when it may proceed.
    Pending {
        reason: String,
    },
    /// The answer to `ClientMsg::Status`.
    Status(Vec<SessionStatus>),
}

/// One session as `rwxfs status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub session: u64,
    pub node_id: String,
    pub mount_id: u64,
    pub read_only: bool,
    /// The client's address, as the server sees it.
    pub addr: String,
    /// Milliseconds since the client was last heard from.
    pub last_heard_ms: u64,
    /// False while the session waits out its lease for its client to come back.
    pub connected: bool,
    pub open_files: u32,
    pub locks: u32,
}

/// Unrequested news from the server.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Push {
    /// Cached attributes and data of this inode are stale.
    InvalInode { ino: u64 },
    /// A name in a directory changed.
    InvalEntry { parent: u64, name: Vec<u8> },
    /// The server is going away; reconnect later.
    Shutdown,
    /// The lock request queued as wait `wait` (its call id) is granted.
    LockGranted { wait: u64 },
    /// Every call of this session that changes the volume, with an id below `below`, that
    /// reached the server is durable: the client need not keep it for sending again after
    /// a crash. Sent after commits and on every (re)connection; each one supersedes the last.
    Durable { below: u64 },
}

/// An operation. How each is classified (what it touches, whether it changes the volume,
/// must be remembered, may block) is `Request::meta`.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
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
        flags: RenameFlags,
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
    /// Data follows the header raw. `kill_priv`: the writer may not keep the file's setuid,
    /// setgid and capabilities, which go with the write (the kernel leaves that to us).
    Write {
        ino: u64,
        offset: u64,
        kill_priv: bool,
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
        kill_priv: bool,
    },
    /// F_GETLK: the first lock that would stop this one (`kind` read or write). `owner` is
    /// the kernel's lock owner id on the client.
    Getlk {
        ino: u64,
        owner: u64,
        range: LockRange,
        kind: LockKind,
        pid: u32,
    },
    /// F_SETLK (`wait: false`) or F_SETLKW; `kind` unlock unlocks. A blocked F_SETLKW is
    /// answered `LockQueued` and granted later by `Push::LockGranted` with this call's id.
    Setlk {
        ino: u64,
        owner: u64,
        range: LockRange,
        kind: LockKind,
        pid: u32,
        wait: bool,
    },
    /// The process waiting for lock wait `wait` was interrupted: answered `Cancelled(true)`
    /// if it was still queued, `Cancelled(false)` if it was granted meanwhile.
    CancelLock {
        wait: u64,
    },
    /// A close: drop every lock `owner` holds on `ino`.
    ReleaseLocks {
        ino: u64,
        owner: u64,
    },
    /// After a server restart, within its grace period: a lock this session held before,
    /// taken again. Refused (ENOLCK) once the grace period is over.
    ReclaimLock {
        ino: u64,
        owner: u64,
        range: LockRange,
        kind: LockKind,
        pid: u32,
    },
    /// After a server restart: this session has reclaimed every lock it held (and sent
    /// again every call the server had not made durable).
    ReclaimDone,
    /// A create (`Create`, `Mkdir`, `Mknod` or `Symlink`) sent again to a restarted server
    /// that lost it: made at the inode number `ino` (generation included) its first run
    /// gave it, so handles to it stay valid. A replayed `Create` does not open the file.
    CreateAgain {
        ino: u64,
        req: Box<Request>,
    },
}

/// The answer to a `Request` that succeeded.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
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
    /// F_GETLK's answer: the conflicting lock, or `kind` unlock if none.
    Lock {
        range: LockRange,
        kind: LockKind,
        pid: u32,
    },
    /// F_SETLKW blocked: a `Push::LockGranted` follows.
    LockQueued,
    Cancelled(bool),
}
