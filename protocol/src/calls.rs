//! The calls: every operation a client asks of the volume (`Request`) and what it gets back
//! when it succeeds (`Response`). Part of the one vocabulary (`messages`), append-only as
//! all of it is.

use serde::{Deserialize, Serialize};

use crate::wire::{
    Attr, DirEntry, Layout, LockKind, LockRange, RenameFlags, SetAttr, StatFs, TimeSpec, VolumeAt,
};

/// An operation. How each is classified (what it touches, whether it changes the volume,
/// must be remembered, may block) is `Request::meta`.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// The attributes of the file `name` names in directory `parent`.
    Lookup {
        /// The directory searched.
        parent: u64,
        /// The name looked up (bytes, as the kernel gives them).
        name: Vec<u8>,
    },
    /// A file's attributes.
    Getattr {
        /// The file.
        ino: u64,
    },
    /// Change a file's attributes (chmod, chown, utimes, truncate); answered with them all.
    Setattr {
        /// The file.
        ino: u64,
        /// The attributes to change; the others stay.
        set: SetAttr,
    },
    /// Make a special file (a device node, a FIFO, a socket) or an empty regular file.
    Mknod {
        /// The directory it is made in.
        parent: u64,
        /// Its name there.
        name: Vec<u8>,
        /// Its type and permission bits (`S_IFCHR | 0o600`...).
        mode: u32,
        /// The device number of a device node.
        rdev: u32,
        /// The owner it gets (the caller's; the server squashes it per its export).
        uid: u32,
        /// The group it gets.
        gid: u32,
    },
    /// Make a directory.
    Mkdir {
        /// The directory it is made in.
        parent: u64,
        /// Its name there.
        name: Vec<u8>,
        /// Its permission bits (the type bits may be left out).
        mode: u32,
        /// The owner it gets.
        uid: u32,
        /// The group it gets.
        gid: u32,
    },
    /// Make a symbolic link.
    Symlink {
        /// The directory it is made in.
        parent: u64,
        /// Its name there.
        name: Vec<u8>,
        /// What it points to, stored as given.
        target: Vec<u8>,
        /// The owner it gets.
        uid: u32,
        /// The group it gets.
        gid: u32,
    },
    /// Give a file one more name (a hard link); answered with its attributes.
    Link {
        /// The file.
        ino: u64,
        /// The directory of the new name.
        newparent: u64,
        /// The new name.
        newname: Vec<u8>,
    },
    /// Remove a name that is not a directory's; the file goes with its last name and its
    /// last open.
    Unlink {
        /// The directory holding the name.
        parent: u64,
        /// The name.
        name: Vec<u8>,
    },
    /// Remove an empty directory.
    Rmdir {
        /// The directory holding it.
        parent: u64,
        /// Its name.
        name: Vec<u8>,
    },
    /// Move a name, replacing what the new name named (unless `flags` say otherwise).
    Rename {
        /// The directory holding the name.
        parent: u64,
        /// The name moved.
        name: Vec<u8>,
        /// The directory it moves to.
        newparent: u64,
        /// Its name there.
        newname: Vec<u8>,
        /// renameat2's: refuse to replace, or exchange the two.
        flags: RenameFlags,
    },
    /// A symbolic link's target.
    Readlink {
        /// The link.
        ino: u64,
    },
    /// A directory's entries, in the order of their cookies.
    Readdir {
        /// The directory.
        ino: u64,
        /// The cookie of the last entry already listed (0 starts; `.` is 1, `..` is 2).
        offset: u64,
        /// The most entries wanted (the server may give fewer).
        max: u32,
    },
    /// `Readdir`, with every entry's attributes.
    Readdirplus {
        /// The directory.
        ino: u64,
        /// As in `Readdir`.
        offset: u64,
        /// As in `Readdir`.
        max: u32,
    },
    /// Make a regular file and open it; answered with its attributes.
    Create {
        /// The directory it is made in.
        parent: u64,
        /// Its name there.
        name: Vec<u8>,
        /// Its type and permission bits.
        mode: u32,
        /// The owner it gets.
        uid: u32,
        /// The group it gets.
        gid: u32,
    },
    /// Open a file: an unlinked file stays readable while its session holds it open.
    Open {
        /// The file.
        ino: u64,
        /// open(2)'s flags (access mode, `O_TRUNC`...), for the permission check.
        flags: i32,
    },
    /// Close one open of a file.
    Release {
        /// The file.
        ino: u64,
    },
    /// Read a file's data; the bytes follow the reply's header raw (`Response::Data`).
    Read {
        /// The file.
        ino: u64,
        /// Where to start.
        offset: u64,
        /// The most bytes wanted; fewer at the end of the file.
        size: u32,
    },
    /// Write a file's data, which follows the header raw; answered `Written`.
    Write {
        /// The file.
        ino: u64,
        /// Where the data goes.
        offset: u64,
        /// The writer may not keep the file's setuid, setgid and capabilities, which go with
        /// the write (the kernel leaves that to the file system).
        kill_priv: bool,
    },
    /// Make a file's data and attributes durable (and with them every change before).
    Fsync {
        /// The file.
        ino: u64,
    },
    /// fallocate(2): reserve blocks, or punch a hole.
    Fallocate {
        /// The file.
        ino: u64,
        /// Where the range starts.
        offset: u64,
        /// Its length in bytes.
        len: u64,
        /// fallocate's `FALLOC_FL_*` flags (keep size, punch hole).
        mode: u32,
        /// As in `Write`: a change to the file's data by one who may not keep its setuid,
        /// setgid and capabilities drops them (the kernel leaves that to the file system).
        kill_priv: bool,
    },
    /// The volume's sizes and free space.
    Statfs,
    /// An extended attribute's value.
    Getxattr {
        /// The file.
        ino: u64,
        /// The attribute's name, with its namespace (`user.foo`).
        name: Vec<u8>,
    },
    /// Set an extended attribute.
    Setxattr {
        /// The file.
        ino: u64,
        /// The attribute's name, with its namespace.
        name: Vec<u8>,
        /// Its new value.
        value: Vec<u8>,
        /// `XATTR_CREATE` (fail if it exists) or `XATTR_REPLACE` (fail if not), or 0.
        flags: u32,
    },
    /// The names of a file's extended attributes.
    Listxattr {
        /// The file.
        ino: u64,
    },
    /// Remove an extended attribute.
    Removexattr {
        /// The file.
        ino: u64,
        /// The attribute's name.
        name: Vec<u8>,
    },
    /// Data follows the header raw; written at the file's end as the server sees it.
    Append {
        /// The file.
        ino: u64,
        /// As in `Write`.
        kill_priv: bool,
    },
    /// F_GETLK: the first lock that would stop this one.
    Getlk {
        /// The file.
        ino: u64,
        /// The kernel's lock owner id on the client: its own locks never stop it.
        owner: u64,
        /// The bytes the lock would cover.
        range: LockRange,
        /// The lock that would be taken: read or write.
        kind: LockKind,
        /// The asking process, as its node numbers it.
        pid: u32,
    },
    /// F_SETLK or F_SETLKW: take a lock, or with `kind` unlock, let one go.
    Setlk {
        /// The file.
        ino: u64,
        /// The kernel's lock owner id on the client (a process's file table, or an open file
        /// for flock and OFD locks).
        owner: u64,
        /// The bytes it covers.
        range: LockRange,
        /// Read, write, or unlock.
        kind: LockKind,
        /// The process taking it, as its node numbers it (what F_GETLK reports to others).
        pid: u32,
        /// F_SETLKW: a lock that cannot be had now is answered `LockQueued`, and granted
        /// later by `Push::LockGranted` with this call's id; without it, refused at once.
        wait: bool,
    },
    /// The process waiting for lock wait `wait` was interrupted: answered `Cancelled(true)`
    /// if it was still queued, `Cancelled(false)` if it was granted meanwhile.
    CancelLock {
        /// The id of the `Setlk` call that waits.
        wait: u64,
    },
    /// A close: drop every lock `owner` holds on `ino`.
    ReleaseLocks {
        /// The file.
        ino: u64,
        /// As in `Setlk`.
        owner: u64,
    },
    /// After a server restart, within its grace period: a lock this session held before,
    /// taken again. Refused (ENOLCK) once the grace period is over.
    ReclaimLock {
        /// As in `Setlk`.
        ino: u64,
        /// As in `Setlk`.
        owner: u64,
        /// As in `Setlk`.
        range: LockRange,
        /// As in `Setlk`.
        kind: LockKind,
        /// As in `Setlk`.
        pid: u32,
    },
    /// After a server restart: this session has reclaimed every lock it held (and sent
    /// again every call the server had not made durable).
    ReclaimDone,
    /// A create (`Create`, `Mkdir`, `Mknod` or `Symlink`) sent again to a restarted server
    /// that lost it: made at the inode number `ino` (generation included) its first run
    /// gave it, so handles to it stay valid. A replayed `Create` does not open the file.
    CreateAgain {
        /// The inode number (generation included) the first run gave it.
        ino: u64,
        /// The create, as first sent.
        req: Box<Request>,
    },
    /// lseek's SEEK_DATA (`whence` 3) or SEEK_HOLE (4), as Linux numbers them: answered
    /// `Offset`, the first offset at or after `offset` in data or in a hole.
    Lseek {
        /// The file.
        ino: u64,
        /// Where the search starts.
        offset: u64,
        /// What it looks for: 3 data, 4 a hole.
        whence: u32,
    },
    /// Direct mode: where the volume's blocks backing `len` bytes at `offset` of a file are,
    /// for the caller to read (or, with `write`, write) the data there itself; answered
    /// `Layout`. For writing, the range's holes are reserved for the caller: they read as
    /// holes to everyone else until its `LayoutCommit`. Refused `WouldBlock` while another
    /// session has uncommitted blocks reserved in the range, and (reading or writing) while
    /// a call that frees or moves the file's blocks runs: the caller goes through the server.
    /// Refused `Perm` for writing with `kill_priv` while the file has privileges such a write
    /// drops (setuid, setgid with group execute, file capabilities): that write goes through
    /// the server, which drops them before the data appears.
    LayoutGet {
        /// The file.
        ino: u64,
        /// Where the range starts.
        offset: u64,
        /// Its length in bytes (a layout covers at most 64 MiB: ask again for the rest).
        len: u64,
        /// For writing, not only reading.
        write: bool,
        /// For writes of a caller who may not keep setuid, setgid and capabilities (as
        /// `Write`'s `kill_priv`).
        kill_priv: bool,
    },
    /// Direct mode: the caller's writes through its layouts are on the volume (flushed):
    /// map the blocks reserved for them in `written`, grow the size to `size` if larger,
    /// set the mtime; answered `Attr`. Durable as any change (`Fsync` after it).
    LayoutCommit {
        /// The file.
        ino: u64,
        /// The ranges written, (offset, length) in bytes.
        written: Vec<(u64, u64)>,
        /// The file's size as the writer sees it (the end of its last write, if larger).
        size: u64,
        /// The modification time to set; the server's clock if `None`.
        mtime: Option<TimeSpec>,
        /// Some of the writes were a caller's who may not keep setuid, setgid and
        /// capabilities: they go, as at such a write through the server (one set since the
        /// layouts were given included).
        kill_priv: bool,
    },
    /// Direct mode: the caller is done with its layouts on the file; blocks still reserved
    /// for it go back to the free ones.
    LayoutReturn {
        /// The file.
        ino: u64,
    },
    /// Direct mode: where the volume lives, for the caller to open it; answered `Location`.
    VolumeLocation,
    /// Direct mode: the caller reads and writes the volume as this client of its store (a
    /// RADOS client's instance address, `IP:PORT/NONCE`): the server fences it there
    /// before it takes the session's layouts. Sent again on every new session.
    StoreClient {
        /// The address the store knows the caller's client by.
        address: String,
    },
    /// Open a file again: an open this mount held on a session the server lost, or before
    /// the server restarted, made again by the caller who made it, with the flags it had.
    /// After a restart it takes the open the session log kept for it, allowed when it was
    /// made; otherwise the file's owner is let past its mode bits, as it is for the reads
    /// and writes through the open (a file created with mode 0200 is still read and written
    /// by its creator's descriptor), and anyone else is checked as for a new open.
    Reopen {
        /// The file.
        ino: u64,
        /// The flags of the open it makes again (its access mode).
        flags: i32,
    },
}

/// The answer to a `Request` that succeeded.
///
/// Append-only: encoded by variant index, so a new variant goes at the end and none is ever
/// removed or moved (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Done; nothing to say (unlink, rename, fsync, release...).
    Empty,
    /// A file's attributes: of what a lookup found, a create made, a setattr changed.
    Attr(Attr),
    /// `Readdir`'s entries.
    Entries(Vec<DirEntry>),
    /// `Readdirplus`'s entries, each with its attributes.
    EntriesPlus(Vec<(DirEntry, Attr)>),
    /// Read data follows the header raw.
    Data,
    /// Bytes a write or an append wrote.
    Written(u32),
    /// A symbolic link's target, or an extended attribute's value.
    Bytes(Vec<u8>),
    /// Extended attributes' names.
    Names(Vec<Vec<u8>>),
    /// `Statfs`'s answer.
    StatFs(StatFs),
    /// F_GETLK's answer: the conflicting lock, or `kind` unlock if none.
    Lock {
        /// The bytes the conflicting lock covers.
        range: LockRange,
        /// Its kind.
        kind: LockKind,
        /// The process holding it, as its node numbers it.
        pid: u32,
    },
    /// F_SETLKW blocked: a `Push::LockGranted` follows.
    LockQueued,
    /// `CancelLock`'s answer: true if the wait was still queued and is now gone.
    Cancelled(bool),
    /// A position in a file (lseek's answer).
    Offset(u64),
    /// `LayoutGet`'s answer.
    Layout(Layout),
    /// `VolumeLocation`'s answer: where the volume lives.
    Location(VolumeAt),
}
