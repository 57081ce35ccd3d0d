//! One vocabulary: every message either side sends. Enums are encoded by variant index, so
//! they are append-only: new variants go at the end, and golden-byte tests pin the encoding.

use serde::{Deserialize, Serialize};

pub use crate::calls::{Request, Response};
use crate::error_code::ErrorCode;
use crate::exports::{ExportCmd, ExportInfo, VolumeSpace};

/// The version both ends speak, checked in `Hello`: bumped whenever a message's encoding
/// changes (the golden bytes of `tests/golden.rs`), so the server refuses an older or newer
/// client with the reason instead of misreading it.
pub const PROTOCOL_VERSION: u32 = 11;

/// From client to server.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// First message on a connection. `nonce`: the client's challenge to the server (see
    /// `ServerMsg::Challenge`).
    Hello {
        /// The client's `PROTOCOL_VERSION`.
        version: u32,
        /// The machine the mount runs on (its machine id): access modes that allow one
        /// node (RWO) count mounts by it.
        node_id: String,
        /// Tells this mount from the node's others (and a remount from the mount before it).
        mount_id: u64,
        /// The mount asks only to read: the server refuses its changes, and it does not count
        /// as a writer for the access mode.
        read_only: bool,
        /// The client's challenge to the server, answered in `ServerMsg::Challenge::mac`.
        nonce: Vec<u8>,
        /// The export mounted (`HOST:PORT/NAME`), confined to its directory; empty for the
        /// whole volume.
        export: String,
    },
    /// An operation; `id` matches the reply. Bulk data (Write) follows the header raw.
    Call {
        /// The client's number for the call, unique in its session and increasing: the
        /// reply carries it, and the reply cache and `Ack` go by it.
        id: u64,
        /// The operation.
        req: Request,
    },
    /// Keeps the session's lease alive.
    Heartbeat,
    /// First message on a connection that replaces a lost one: the session continues if the
    /// server still holds it (its open files and the replies to calls it may not have
    /// received); otherwise the server starts a new one, as for `Hello`. `secret` is the one
    /// `Welcome` issued with the session: without it the session is not resumed.
    Resume {
        /// As in `Hello`.
        version: u32,
        /// As in `Hello`.
        node_id: String,
        /// As in `Hello`.
        mount_id: u64,
        /// As in `Hello`.
        read_only: bool,
        /// The session to continue, as `Welcome` numbered it.
        session: u64,
        /// The session's secret, from the `Welcome` that created it.
        secret: Vec<u8>,
        /// As in `Hello`.
        nonce: Vec<u8>,
        /// As in `Hello`: a session is resumed only for the export it was made for.
        export: String,
    },
    /// The client has the replies to every call with an id below `below`: the server may
    /// forget them.
    Ack {
        /// Every call id below it has its reply.
        below: u64,
    },
    /// The client is unmounting: end the session now rather than at the end of its lease.
    Goodbye,
    /// The answer to `ServerMsg::Challenge`: HMAC-SHA256 of the challenge under the shared
    /// token (`auth::proof`). The token itself never travels.
    Proof {
        /// The HMAC over the server's challenge.
        mac: Vec<u8>,
    },
    /// First message of a `rwxfs status` connection: list the sessions, then close.
    Status {
        /// As in `Hello`.
        version: u32,
        /// As in `Hello`: a status connection proves the token too.
        nonce: Vec<u8>,
    },
    /// `Call` made on behalf of `cred`. A plain `Call` is anonymous (nobody).
    CallAs {
        /// As in `Call`.
        id: u64,
        /// As in `Call`.
        req: Request,
        /// The caller: its permissions are the ones checked.
        cred: Cred,
    },
    /// First message of an administrator's connection (`rwxfs export`): proves the
    /// server's administrator token (not the mount token), runs `cmd`, is answered
    /// `ServerMsg::Exports`, and closes.
    Admin {
        /// As in `Hello`.
        version: u32,
        /// As in `Hello`.
        nonce: Vec<u8>,
        /// What to do.
        cmd: ExportCmd,
    },
}

/// Most supplementary groups a call carries (as NFS's AUTH_SYS).
pub const MAX_GROUPS: usize = 16;

/// Who makes a call, as the client's kernel says: the server squashes it per its export and
/// checks every call's permissions with it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cred {
    /// The calling process's file-system user id.
    pub uid: u32,
    /// Its file-system group id.
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
    /// The mount is admitted: its session is created or resumed.
    Welcome {
        /// The server's `PROTOCOL_VERSION`.
        version: u32,
        /// The session's number, for `Resume` after a reconnect.
        session: u64,
        /// How long the server keeps a silent client's session (its open files and locks):
        /// the client sends a `Heartbeat` well within it.
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
    /// The mount is not admitted (another version, a bad token, an access mode in use, a
    /// server at its limits); the connection closes.
    Refused {
        /// Why, in words the client shows its user.
        reason: String,
    },
    /// Reply to `Call { id }`: a response, or why not. Read data follows the header raw.
    Reply {
        /// The call's id.
        id: u64,
        /// Its answer, or the error it failed with.
        result: Result<Response, ErrorCode>,
    },
    /// Unrequested news from the server.
    Push(Push),
    /// Prove you hold the export's token: answer with `ClientMsg::Proof`. `mac` is the
    /// server's own proof, over the client's nonce (`auth::server_proof`): a client refuses a
    /// server that cannot give it, before it proves anything itself.
    Challenge {
        /// The server's challenge, which the client's `Proof` answers.
        nonce: Vec<u8>,
        /// The server's own proof of the token, over the client's nonce.
        mac: Vec<u8>,
    },
    /// The mount must wait (an RWOP volume in use); `Welcome` follows when it may proceed.
    Pending {
        /// Why the mount waits, in words the client shows its user.
        reason: String,
    },
    /// The answer to `ClientMsg::Status`.
    Status(Vec<SessionStatus>),
    /// The answer to `ClientMsg::Admin`: every export after the command (the one it made or
    /// changed among them), or why it was refused.
    Exports(Result<Vec<ExportInfo>, String>),
    /// The answer to every first message on a standby server: it does not serve the volume
    /// (another server does, and this one takes over if that one is gone); the connection
    /// closes. A mount with other addresses tries the next.
    Standby {
        /// Who serves the volume now, as the active server describes itself (its host and
        /// address), or why that is not known.
        active: String,
    },
    /// The answer to `ClientMsg::Admin` with `ExportCmd::Space`: the volume's size and what
    /// is free in it, or why it was refused.
    Space(Result<VolumeSpace, String>),
}

/// One session as `rwxfs status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The session's number.
    pub session: u64,
    /// The node its mount runs on (`Hello::node_id`).
    pub node_id: String,
    /// Its mount on that node (`Hello::mount_id`).
    pub mount_id: u64,
    /// The mount only reads.
    pub read_only: bool,
    /// The client's address, as the server sees it.
    pub addr: String,
    /// Milliseconds since the client was last heard from.
    pub last_heard_ms: u64,
    /// False while the session waits out its lease for its client to come back.
    pub connected: bool,
    /// Opens of files the session holds (a file opened twice counts twice).
    pub open_files: u32,
    /// Byte-range and whole-file locks it holds.
    pub locks: u32,
}

/// Unrequested news from the server.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Push {
    /// Cached attributes and data of this inode are stale.
    InvalInode {
        /// The inode another mount changed.
        ino: u64,
    },
    /// A name in a directory changed.
    InvalEntry {
        /// The directory.
        parent: u64,
        /// The name made, removed or renamed in it.
        name: Vec<u8>,
    },
    /// The server is going away; reconnect later.
    Shutdown,
    /// The lock request queued as wait `wait` (its call id) is granted.
    LockGranted {
        /// The id of the `Setlk` call that was answered `LockQueued`.
        wait: u64,
    },
    /// Every call of this session that changes the volume, with an id below `below`, that
    /// reached the server is durable: the client need not keep it for sending again after
    /// a crash. Sent after commits and on every (re)connection; each one supersedes the last.
    Durable {
        /// Every changing call with an id below it is durable.
        below: u64,
    },
    /// Direct mode: give back your layouts on this inode. The server is about to free or
    /// move blocks of the file (a truncate, a punched hole, its last name removed or renamed
    /// over), or another mount asks for a layout that conflicts: commit what you wrote
    /// through them (`LayoutCommit`), then return them (`LayoutReturn`). A mount that has
    /// not within its lease loses them: its uncommitted writes never appear. Pushed again
    /// (every second) until answered: a push may be dropped on the way, or reach the mount
    /// late.
    LayoutRecall {
        /// The file.
        ino: u64,
        /// How long the server had been waiting for the answer when it sent this push, in
        /// milliseconds: the lease it gives the mount runs from that wait's start.
        waited_ms: u64,
    },
}
