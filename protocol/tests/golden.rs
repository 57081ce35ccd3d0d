//! Golden bytes: the exact encoding of every message variant and every wire struct, one
//! row per field with what it is. A change here is a change of the wire: it needs a protocol
//! version bump (`PROTOCOL_VERSION`), and enums only ever grow at their end. Each
//! `*_golden` function matches every variant of its enum to its bytes, so a new variant
//! does not build until it is pinned here.

use std::fmt::Debug;

use protocol::codec::{decode_body, encode_header};
use protocol::{
    AccessMode, Attr, ClientMsg, Cred, DirEntry, ErrorCode, ExportCmd, ExportInfo, Extent,
    FileKind, Layout, LockKind, LockRange, Push, RenameFlags, Request, Response, ServerMsg,
    SessionStatus, SetAttr, SetTime, StatFs, TimeSpec, VolumeAt, VolumeSpace,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` encodes to exactly `golden`, and `golden` decodes to exactly `value`.
fn pin<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T, golden: &[u8]) {
    assert_eq!(encode_header(value).unwrap(), golden, "{value:?}");
    let mut body = (golden.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(golden);
    let (back, bulk) = decode_body::<T>(&body).unwrap();
    assert_eq!((&back, bulk.len()), (value, 0));
}

// ---- wire structs ----

#[rustfmt::skip]
const TIME_SPEC: &[u8] = &[
    0, 241, 83, 101, 0, 0, 0, 0, // sec
    5, 0, 0, 0,                 // nsec
];

#[test]
fn time_spec() {
    pin(
        &TimeSpec {
            sec: 1700000000,
            nsec: 5,
        },
        TIME_SPEC,
    );
}

#[rustfmt::skip]
const FILE_KIND_REGULAR_FILE: &[u8] = &[
    0, 0, 0, 0,                 // FileKind::RegularFile (variant 0)
];

#[test]
fn file_kind_regular_file() {
    let v = FileKind::RegularFile;
    pin(&v, file_kind_golden(&v));
}

#[rustfmt::skip]
const FILE_KIND_DIRECTORY: &[u8] = &[
    1, 0, 0, 0,                 // FileKind::Directory (variant 1)
];

#[test]
fn file_kind_directory() {
    let v = FileKind::Directory;
    pin(&v, file_kind_golden(&v));
}

#[rustfmt::skip]
const FILE_KIND_SYMLINK: &[u8] = &[
    2, 0, 0, 0,                 // FileKind::Symlink (variant 2)
];

#[test]
fn file_kind_symlink() {
    let v = FileKind::Symlink;
    pin(&v, file_kind_golden(&v));
}

#[rustfmt::skip]
const FILE_KIND_NAMED_PIPE: &[u8] = &[
    3, 0, 0, 0,                 // FileKind::NamedPipe (variant 3)
];

#[test]
fn file_kind_named_pipe() {
    let v = FileKind::NamedPipe;
    pin(&v, file_kind_golden(&v));
}

#[rustfmt::skip]
const FILE_KIND_SOCKET: &[u8] = &[
    4, 0, 0, 0,                 // FileKind::Socket (variant 4)
];

#[test]
fn file_kind_socket() {
    let v = FileKind::Socket;
    pin(&v, file_kind_golden(&v));
}

#[rustfmt::skip]
const FILE_KIND_CHAR_DEVICE: &[u8] = &[
    5, 0, 0, 0,                 // FileKind::CharDevice (variant 5)
];

#[test]
fn file_kind_char_device() {
    let v = FileKind::CharDevice;
    pin(&v, file_kind_golden(&v));
}

#[rustfmt::skip]
const FILE_KIND_BLOCK_DEVICE: &[u8] = &[
    6, 0, 0, 0,                 // FileKind::BlockDevice (variant 6)
];

#[test]
fn file_kind_block_device() {
    let v = FileKind::BlockDevice;
    pin(&v, file_kind_golden(&v));
}

#[rustfmt::skip]
const ATTR: &[u8] = &[
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    3, 0, 0, 0,                 // generation
    0, 16, 0, 0, 0, 0, 0, 0,    // size
    8, 0, 0, 0, 0, 0, 0, 0,     // blocks
    1, 241, 83, 101, 0, 0, 0, 0, // atime.sec
    1, 0, 0, 0,                 // atime.nsec
    2, 241, 83, 101, 0, 0, 0, 0, // mtime.sec
    2, 0, 0, 0,                 // mtime.nsec
    3, 241, 83, 101, 0, 0, 0, 0, // ctime.sec
    3, 0, 0, 0,                 // ctime.nsec
    0, 0, 0, 0,                 // kind: FileKind::RegularFile (variant 0)
    164, 1,                     // perm
    1, 0, 0, 0,                 // nlink
    232, 3, 0, 0,               // uid
    100, 0, 0, 0,               // gid
    0, 0, 0, 0,                 // rdev
];

#[test]
fn attr() {
    pin(
        &Attr {
            ino: 9,
            generation: 3,
            size: 4096,
            blocks: 8,
            atime: TimeSpec {
                sec: 1700000001,
                nsec: 1,
            },
            mtime: TimeSpec {
                sec: 1700000002,
                nsec: 2,
            },
            ctime: TimeSpec {
                sec: 1700000003,
                nsec: 3,
            },
            kind: FileKind::RegularFile,
            perm: 0o644,
            nlink: 1,
            uid: 1000,
            gid: 100,
            rdev: 0,
        },
        ATTR,
    );
}

#[rustfmt::skip]
const SET_TIME_AT: &[u8] = &[
    0, 0, 0, 0,                 // SetTime::At (variant 0)
    4, 241, 83, 101, 0, 0, 0, 0, // sec
    4, 0, 0, 0,                 // nsec
];

#[test]
fn set_time_at() {
    let v = SetTime::At(TimeSpec {
        sec: 1700000004,
        nsec: 4,
    });
    pin(&v, set_time_golden(&v));
}

#[rustfmt::skip]
const SET_TIME_NOW: &[u8] = &[
    1, 0, 0, 0,                 // SetTime::Now (variant 1)
];

#[test]
fn set_time_now() {
    let v = SetTime::Now;
    pin(&v, set_time_golden(&v));
}

#[rustfmt::skip]
const SET_ATTR: &[u8] = &[
    1,                          // mode: Some
    237, 9, 0, 0,               // mode
    0,                          // uid: None
    1,                          // gid: Some
    100, 0, 0, 0,               // gid
    1,                          // size: Some
    0, 0, 0, 0, 0, 0, 0, 0,     // size
    1,                          // atime: Some
    1, 0, 0, 0,                 // atime: SetTime::Now (variant 1)
    1,                          // mtime: Some
    0, 0, 0, 0,                 // mtime: SetTime::At (variant 0)
    4, 241, 83, 101, 0, 0, 0, 0, // mtime.sec
    4, 0, 0, 0,                 // mtime.nsec
    0,                          // ctime: None
    1,                          // kill_priv
];

#[test]
fn set_attr() {
    pin(
        &SetAttr {
            mode: Some(0o4755),
            uid: None,
            gid: Some(100),
            size: Some(0),
            atime: Some(SetTime::Now),
            mtime: Some(SetTime::At(TimeSpec {
                sec: 1700000004,
                nsec: 4,
            })),
            ctime: None,
            kill_priv: true,
        },
        SET_ATTR,
    );
}

#[rustfmt::skip]
const DIR_ENTRY: &[u8] = &[
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    3, 0, 0, 0, 0, 0, 0, 0,     // offset
    1, 0, 0, 0,                 // kind: FileKind::Directory (variant 1)
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'd',                       // name
];

#[test]
fn dir_entry() {
    pin(
        &DirEntry {
            ino: 9,
            offset: 3,
            kind: FileKind::Directory,
            name: b"d".to_vec(),
        },
        DIR_ENTRY,
    );
}

#[rustfmt::skip]
const STAT_FS: &[u8] = &[
    232, 3, 0, 0, 0, 0, 0, 0,   // blocks
    244, 1, 0, 0, 0, 0, 0, 0,   // bfree
    144, 1, 0, 0, 0, 0, 0, 0,   // bavail
    100, 0, 0, 0, 0, 0, 0, 0,   // files
    50, 0, 0, 0, 0, 0, 0, 0,    // ffree
    0, 16, 0, 0,                // bsize
    255, 0, 0, 0,               // namelen
];

#[test]
fn stat_fs() {
    pin(
        &StatFs {
            blocks: 1000,
            bfree: 500,
            bavail: 400,
            files: 100,
            ffree: 50,
            bsize: 4096,
            namelen: 255,
        },
        STAT_FS,
    );
}

#[rustfmt::skip]
const RENAME_FLAGS: &[u8] = &[
    1,                          // noreplace
    0,                          // exchange
];

#[test]
fn rename_flags() {
    pin(
        &RenameFlags {
            noreplace: true,
            exchange: false,
        },
        RENAME_FLAGS,
    );
}

#[rustfmt::skip]
const LOCK_RANGE: &[u8] = &[
    10, 0, 0, 0, 0, 0, 0, 0,    // start
    255, 255, 255, 255, 255, 255, 255, 255, // end
];

#[test]
fn lock_range() {
    pin(
        &LockRange {
            start: 10,
            end: u64::MAX,
        },
        LOCK_RANGE,
    );
}

#[rustfmt::skip]
const LOCK_KIND_READ: &[u8] = &[
    0, 0, 0, 0,                 // LockKind::Read (0)
];

#[test]
fn lock_kind_read() {
    let v = LockKind::Read;
    pin(&v, lock_kind_golden(&v));
}

#[rustfmt::skip]
const LOCK_KIND_WRITE: &[u8] = &[
    1, 0, 0, 0,                 // LockKind::Write (1)
];

#[test]
fn lock_kind_write() {
    let v = LockKind::Write;
    pin(&v, lock_kind_golden(&v));
}

#[rustfmt::skip]
const LOCK_KIND_UNLOCK: &[u8] = &[
    2, 0, 0, 0,                 // LockKind::Unlock (2)
];

#[test]
fn lock_kind_unlock() {
    let v = LockKind::Unlock;
    pin(&v, lock_kind_golden(&v));
}

#[rustfmt::skip]
const LOCK_KIND_OTHER: &[u8] = &[
    77, 0, 0, 0,                // LockKind::Other (77)
];

#[test]
fn lock_kind_other() {
    let v = LockKind::Other(77);
    pin(&v, lock_kind_golden(&v));
}

#[rustfmt::skip]
const CRED: &[u8] = &[
    232, 3, 0, 0,               // uid
    100, 0, 0, 0,               // gid
    2, 0, 0, 0, 0, 0, 0, 0,     // groups length
    100, 0, 0, 0,               // groups[0]
    27, 0, 0, 0,                // groups[1]
];

#[test]
fn cred() {
    pin(
        &Cred {
            uid: 1000,
            gid: 100,
            groups: vec![100, 27],
        },
        CRED,
    );
}

#[rustfmt::skip]
const SESSION_STATUS: &[u8] = &[
    7, 0, 0, 0, 0, 0, 0, 0,     // session
    2, 0, 0, 0, 0, 0, 0, 0,     // node_id length
    b'n', b'1',                 // node_id
    2, 0, 0, 0, 0, 0, 0, 0,     // mount_id
    0,                          // read_only
    10, 0, 0, 0, 0, 0, 0, 0,    // addr length
    b'1', b'0', b'.', b'0', b'.', b'0', b'.', b'2', 58, b'5', // addr
    220, 5, 0, 0, 0, 0, 0, 0,   // last_heard_ms
    1,                          // connected
    3, 0, 0, 0,                 // open_files
    1, 0, 0, 0,                 // locks
];

#[test]
fn session_status() {
    pin(
        &SessionStatus {
            session: 7,
            node_id: "n1".into(),
            mount_id: 2,
            read_only: false,
            addr: "10.0.0.2:5".into(),
            last_heard_ms: 1500,
            connected: true,
            open_files: 3,
            locks: 1,
        },
        SESSION_STATUS,
    );
}

/// Every variant of `FileKind` has its golden bytes.
fn file_kind_golden(v: &FileKind) -> &'static [u8] {
    match v {
        FileKind::RegularFile => FILE_KIND_REGULAR_FILE,
        FileKind::Directory => FILE_KIND_DIRECTORY,
        FileKind::Symlink => FILE_KIND_SYMLINK,
        FileKind::NamedPipe => FILE_KIND_NAMED_PIPE,
        FileKind::Socket => FILE_KIND_SOCKET,
        FileKind::CharDevice => FILE_KIND_CHAR_DEVICE,
        FileKind::BlockDevice => FILE_KIND_BLOCK_DEVICE,
    }
}

/// Every variant of `SetTime` has its golden bytes.
fn set_time_golden(v: &SetTime) -> &'static [u8] {
    match v {
        SetTime::At(_) => SET_TIME_AT,
        SetTime::Now => SET_TIME_NOW,
    }
}

/// Every variant of `LockKind` has its golden bytes.
fn lock_kind_golden(v: &LockKind) -> &'static [u8] {
    match v {
        LockKind::Read => LOCK_KIND_READ,
        LockKind::Write => LOCK_KIND_WRITE,
        LockKind::Unlock => LOCK_KIND_UNLOCK,
        LockKind::Other(_) => LOCK_KIND_OTHER,
    }
}

// ---- Request ----

#[rustfmt::skip]
const REQUEST_LOOKUP: &[u8] = &[
    0, 0, 0, 0,                 // Request::Lookup (variant 0)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'a',                       // name
];

#[test]
fn request_lookup() {
    let v = Request::Lookup {
        parent: 1,
        name: b"a".to_vec(),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_GETATTR: &[u8] = &[
    1, 0, 0, 0,                 // Request::Getattr (variant 1)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
];

#[test]
fn request_getattr() {
    let v = Request::Getattr { ino: 9 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_SETATTR: &[u8] = &[
    2, 0, 0, 0,                 // Request::Setattr (variant 2)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    1,                          // set.mode: Some
    237, 9, 0, 0,               // set.mode
    0,                          // set.uid: None
    1,                          // set.gid: Some
    100, 0, 0, 0,               // set.gid
    1,                          // set.size: Some
    0, 0, 0, 0, 0, 0, 0, 0,     // set.size
    1,                          // set.atime: Some
    1, 0, 0, 0,                 // set.atime: SetTime::Now (variant 1)
    1,                          // set.mtime: Some
    0, 0, 0, 0,                 // set.mtime: SetTime::At (variant 0)
    4, 241, 83, 101, 0, 0, 0, 0, // set.mtime.sec
    4, 0, 0, 0,                 // set.mtime.nsec
    0,                          // set.ctime: None
    1,                          // set.kill_priv
];

#[test]
fn request_setattr() {
    let v = Request::Setattr {
        ino: 9,
        set: SetAttr {
            mode: Some(0o4755),
            uid: None,
            gid: Some(100),
            size: Some(0),
            atime: Some(SetTime::Now),
            mtime: Some(SetTime::At(TimeSpec {
                sec: 1700000004,
                nsec: 4,
            })),
            ctime: None,
            kill_priv: true,
        },
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_MKNOD: &[u8] = &[
    3, 0, 0, 0,                 // Request::Mknod (variant 3)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'p',                       // name
    164, 17, 0, 0,              // mode
    1, 8, 0, 0,                 // rdev
    232, 3, 0, 0,               // uid
    100, 0, 0, 0,               // gid
];

#[test]
fn request_mknod() {
    let v = Request::Mknod {
        parent: 1,
        name: b"p".to_vec(),
        mode: 0o10644,
        rdev: 0x0801,
        uid: 1000,
        gid: 100,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_MKDIR: &[u8] = &[
    4, 0, 0, 0,                 // Request::Mkdir (variant 4)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'd',                       // name
    237, 1, 0, 0,               // mode
    232, 3, 0, 0,               // uid
    100, 0, 0, 0,               // gid
];

#[test]
fn request_mkdir() {
    let v = Request::Mkdir {
        parent: 1,
        name: b"d".to_vec(),
        mode: 0o755,
        uid: 1000,
        gid: 100,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_SYMLINK: &[u8] = &[
    5, 0, 0, 0,                 // Request::Symlink (variant 5)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b's',                       // name
    1, 0, 0, 0, 0, 0, 0, 0,     // target length
    b't',                       // target
    232, 3, 0, 0,               // uid
    100, 0, 0, 0,               // gid
];

#[test]
fn request_symlink() {
    let v = Request::Symlink {
        parent: 1,
        name: b"s".to_vec(),
        target: b"t".to_vec(),
        uid: 1000,
        gid: 100,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_LINK: &[u8] = &[
    6, 0, 0, 0,                 // Request::Link (variant 6)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    2, 0, 0, 0, 0, 0, 0, 0,     // newparent
    1, 0, 0, 0, 0, 0, 0, 0,     // newname length
    b'l',                       // newname
];

#[test]
fn request_link() {
    let v = Request::Link {
        ino: 9,
        newparent: 2,
        newname: b"l".to_vec(),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_UNLINK: &[u8] = &[
    7, 0, 0, 0,                 // Request::Unlink (variant 7)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'u',                       // name
];

#[test]
fn request_unlink() {
    let v = Request::Unlink {
        parent: 1,
        name: b"u".to_vec(),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_RMDIR: &[u8] = &[
    8, 0, 0, 0,                 // Request::Rmdir (variant 8)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'r',                       // name
];

#[test]
fn request_rmdir() {
    let v = Request::Rmdir {
        parent: 1,
        name: b"r".to_vec(),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_RENAME: &[u8] = &[
    9, 0, 0, 0,                 // Request::Rename (variant 9)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'x',                       // name
    2, 0, 0, 0, 0, 0, 0, 0,     // newparent
    1, 0, 0, 0, 0, 0, 0, 0,     // newname length
    b'y',                       // newname
    1,                          // flags.noreplace
    0,                          // flags.exchange
];

#[test]
fn request_rename() {
    let v = Request::Rename {
        parent: 1,
        name: b"x".to_vec(),
        newparent: 2,
        newname: b"y".to_vec(),
        flags: RenameFlags {
            noreplace: true,
            exchange: false,
        },
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_READLINK: &[u8] = &[
    10, 0, 0, 0,                // Request::Readlink (variant 10)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
];

#[test]
fn request_readlink() {
    let v = Request::Readlink { ino: 9 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_READDIR: &[u8] = &[
    11, 0, 0, 0,                // Request::Readdir (variant 11)
    1, 0, 0, 0, 0, 0, 0, 0,     // ino
    3, 0, 0, 0, 0, 0, 0, 0,     // offset
    128, 0, 0, 0,               // max
];

#[test]
fn request_readdir() {
    let v = Request::Readdir {
        ino: 1,
        offset: 3,
        max: 128,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_READDIRPLUS: &[u8] = &[
    12, 0, 0, 0,                // Request::Readdirplus (variant 12)
    1, 0, 0, 0, 0, 0, 0, 0,     // ino
    3, 0, 0, 0, 0, 0, 0, 0,     // offset
    128, 0, 0, 0,               // max
];

#[test]
fn request_readdirplus() {
    let v = Request::Readdirplus {
        ino: 1,
        offset: 3,
        max: 128,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_CREATE: &[u8] = &[
    13, 0, 0, 0,                // Request::Create (variant 13)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'c',                       // name
    164, 1, 0, 0,               // mode
    232, 3, 0, 0,               // uid
    100, 0, 0, 0,               // gid
];

#[test]
fn request_create() {
    let v = Request::Create {
        parent: 1,
        name: b"c".to_vec(),
        mode: 0o644,
        uid: 1000,
        gid: 100,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_OPEN: &[u8] = &[
    14, 0, 0, 0,                // Request::Open (variant 14)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    2, 0, 0, 0,                 // flags
];

#[test]
fn request_open() {
    let v = Request::Open { ino: 9, flags: 2 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_RELEASE: &[u8] = &[
    15, 0, 0, 0,                // Request::Release (variant 15)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
];

#[test]
fn request_release() {
    let v = Request::Release { ino: 9 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_READ: &[u8] = &[
    16, 0, 0, 0,                // Request::Read (variant 16)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    0, 16, 0, 0, 0, 0, 0, 0,    // offset
    0, 0, 1, 0,                 // size
];

#[test]
fn request_read() {
    let v = Request::Read {
        ino: 9,
        offset: 4096,
        size: 65536,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_WRITE: &[u8] = &[
    17, 0, 0, 0,                // Request::Write (variant 17)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    0, 16, 0, 0, 0, 0, 0, 0,    // offset
    1,                          // kill_priv
];

#[test]
fn request_write() {
    let v = Request::Write {
        ino: 9,
        offset: 4096,
        kill_priv: true,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_FSYNC: &[u8] = &[
    18, 0, 0, 0,                // Request::Fsync (variant 18)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
];

#[test]
fn request_fsync() {
    let v = Request::Fsync { ino: 9 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_FALLOCATE: &[u8] = &[
    19, 0, 0, 0,                // Request::Fallocate (variant 19)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    0, 0, 0, 0, 0, 0, 0, 0,     // offset
    0, 32, 0, 0, 0, 0, 0, 0,    // len
    1, 0, 0, 0,                 // mode
    1,                          // kill_priv
];

#[test]
fn request_fallocate() {
    let v = Request::Fallocate {
        ino: 9,
        offset: 0,
        len: 8192,
        mode: 1,
        kill_priv: true,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_STATFS: &[u8] = &[
    20, 0, 0, 0,                // Request::Statfs (variant 20)
];

#[test]
fn request_statfs() {
    let v = Request::Statfs;
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_GETXATTR: &[u8] = &[
    21, 0, 0, 0,                // Request::Getxattr (variant 21)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    6, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'u', b's', b'e', b'r', b'.', b'k', // name
];

#[test]
fn request_getxattr() {
    let v = Request::Getxattr {
        ino: 9,
        name: b"user.k".to_vec(),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_SETXATTR: &[u8] = &[
    22, 0, 0, 0,                // Request::Setxattr (variant 22)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    6, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'u', b's', b'e', b'r', b'.', b'k', // name
    1, 0, 0, 0, 0, 0, 0, 0,     // value length
    b'v',                       // value
    1, 0, 0, 0,                 // flags
];

#[test]
fn request_setxattr() {
    let v = Request::Setxattr {
        ino: 9,
        name: b"user.k".to_vec(),
        value: b"v".to_vec(),
        flags: 1,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_LISTXATTR: &[u8] = &[
    23, 0, 0, 0,                // Request::Listxattr (variant 23)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
];

#[test]
fn request_listxattr() {
    let v = Request::Listxattr { ino: 9 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_REMOVEXATTR: &[u8] = &[
    24, 0, 0, 0,                // Request::Removexattr (variant 24)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    6, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'u', b's', b'e', b'r', b'.', b'k', // name
];

#[test]
fn request_removexattr() {
    let v = Request::Removexattr {
        ino: 9,
        name: b"user.k".to_vec(),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_APPEND: &[u8] = &[
    25, 0, 0, 0,                // Request::Append (variant 25)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    0,                          // kill_priv
];

#[test]
fn request_append() {
    let v = Request::Append {
        ino: 9,
        kill_priv: false,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_GETLK: &[u8] = &[
    26, 0, 0, 0,                // Request::Getlk (variant 26)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    77, 0, 0, 0, 0, 0, 0, 0,    // owner
    10, 0, 0, 0, 0, 0, 0, 0,    // range.start
    255, 255, 255, 255, 255, 255, 255, 255, // range.end
    0, 0, 0, 0,                 // kind: LockKind::Read (0)
    146, 16, 0, 0,              // pid
];

#[test]
fn request_getlk() {
    let v = Request::Getlk {
        ino: 9,
        owner: 77,
        range: LockRange {
            start: 10,
            end: u64::MAX,
        },
        kind: LockKind::Read,
        pid: 4242,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_SETLK: &[u8] = &[
    27, 0, 0, 0,                // Request::Setlk (variant 27)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    77, 0, 0, 0, 0, 0, 0, 0,    // owner
    10, 0, 0, 0, 0, 0, 0, 0,    // range.start
    255, 255, 255, 255, 255, 255, 255, 255, // range.end
    1, 0, 0, 0,                 // kind: LockKind::Write (1)
    146, 16, 0, 0,              // pid
    1,                          // wait
];

#[test]
fn request_setlk() {
    let v = Request::Setlk {
        ino: 9,
        owner: 77,
        range: LockRange {
            start: 10,
            end: u64::MAX,
        },
        kind: LockKind::Write,
        pid: 4242,
        wait: true,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_CANCEL_LOCK: &[u8] = &[
    28, 0, 0, 0,                // Request::CancelLock (variant 28)
    12, 0, 0, 0, 0, 0, 0, 0,    // wait
];

#[test]
fn request_cancel_lock() {
    let v = Request::CancelLock { wait: 12 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_RELEASE_LOCKS: &[u8] = &[
    29, 0, 0, 0,                // Request::ReleaseLocks (variant 29)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    77, 0, 0, 0, 0, 0, 0, 0,    // owner
];

#[test]
fn request_release_locks() {
    let v = Request::ReleaseLocks { ino: 9, owner: 77 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_RECLAIM_LOCK: &[u8] = &[
    30, 0, 0, 0,                // Request::ReclaimLock (variant 30)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    77, 0, 0, 0, 0, 0, 0, 0,    // owner
    10, 0, 0, 0, 0, 0, 0, 0,    // range.start
    255, 255, 255, 255, 255, 255, 255, 255, // range.end
    1, 0, 0, 0,                 // kind: LockKind::Write (1)
    146, 16, 0, 0,              // pid
];

#[test]
fn request_reclaim_lock() {
    let v = Request::ReclaimLock {
        ino: 9,
        owner: 77,
        range: LockRange {
            start: 10,
            end: u64::MAX,
        },
        kind: LockKind::Write,
        pid: 4242,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_RECLAIM_DONE: &[u8] = &[
    31, 0, 0, 0,                // Request::ReclaimDone (variant 31)
];

#[test]
fn request_reclaim_done() {
    let v = Request::ReclaimDone;
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_CREATE_AGAIN: &[u8] = &[
    32, 0, 0, 0,                // Request::CreateAgain (variant 32)
    9, 0, 0, 0, 42, 0, 0, 0,    // ino
    4, 0, 0, 0,                 // req: Request::Mkdir (variant 4)
    1, 0, 0, 0, 0, 0, 0, 0,     // req.parent
    1, 0, 0, 0, 0, 0, 0, 0,     // req.name length
    b'd',                       // req.name
    237, 1, 0, 0,               // req.mode
    232, 3, 0, 0,               // req.uid
    100, 0, 0, 0,               // req.gid
];

#[test]
fn request_create_again() {
    let v = Request::CreateAgain {
        ino: 42 << 32 | 9,
        req: Box::new(Request::Mkdir {
            parent: 1,
            name: b"d".to_vec(),
            mode: 0o755,
            uid: 1000,
            gid: 100,
        }),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_LSEEK: &[u8] = &[
    33, 0, 0, 0,                // Request::Lseek (variant 33)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    1, 16, 0, 0, 0, 0, 0, 0,    // offset
    4, 0, 0, 0,                 // whence
];

#[test]
fn request_lseek() {
    let v = Request::Lseek {
        ino: 9,
        offset: 4097,
        whence: 4,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_LAYOUT_GET: &[u8] = &[
    34, 0, 0, 0,                // Request::LayoutGet (variant 34)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    0, 16, 0, 0, 0, 0, 0, 0,    // offset
    0, 32, 0, 0, 0, 0, 0, 0,    // len
    1,                          // write
    1,                          // kill_priv
];

#[test]
fn request_layout_get() {
    let v = Request::LayoutGet {
        ino: 9,
        offset: 4096,
        len: 8192,
        write: true,
        kill_priv: true,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_LAYOUT_COMMIT: &[u8] = &[
    35, 0, 0, 0,                // Request::LayoutCommit (variant 35)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    1, 0, 0, 0, 0, 0, 0, 0,     // written: length
    0, 16, 0, 0, 0, 0, 0, 0,    // written[0].0 (offset)
    5, 0, 0, 0, 0, 0, 0, 0,     // written[0].1 (length)
    5, 16, 0, 0, 0, 0, 0, 0,    // size
    1,                          // mtime: Some
    2, 0, 0, 0, 0, 0, 0, 0,     // mtime.sec
    3, 0, 0, 0,                 // mtime.nsec
    1,                          // kill_priv
];

#[test]
fn request_layout_commit() {
    let v = Request::LayoutCommit {
        ino: 9,
        written: vec![(4096, 5)],
        size: 4101,
        mtime: Some(TimeSpec { sec: 2, nsec: 3 }),
        kill_priv: true,
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_LAYOUT_RETURN: &[u8] = &[
    36, 0, 0, 0,                // Request::LayoutReturn (variant 36)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
];

#[test]
fn request_layout_return() {
    let v = Request::LayoutReturn { ino: 9 };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_VOLUME_LOCATION: &[u8] = &[
    37, 0, 0, 0,                // Request::VolumeLocation (variant 37)
];

#[test]
fn request_volume_location() {
    let v = Request::VolumeLocation;
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_STORE_CLIENT: &[u8] = &[
    38, 0, 0, 0,                // Request::StoreClient (variant 38)
    8, 0, 0, 0, 0, 0, 0, 0,     // address: length
    b'1', b'.', b'2', b':', b'0', b'/', b'4', b'2', //
];

#[test]
fn request_store_client() {
    let v = Request::StoreClient {
        address: "1.2:0/42".to_string(),
    };
    pin(&v, request_golden(&v));
}

#[rustfmt::skip]
const REQUEST_REOPEN: &[u8] = &[
    39, 0, 0, 0,                // Request::Reopen (variant 39)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    2, 0, 0, 0,                 // flags
];

#[test]
fn request_reopen() {
    let v = Request::Reopen { ino: 9, flags: 2 };
    pin(&v, request_golden(&v));
}

/// Every variant of `Request` has its golden bytes.
fn request_golden(v: &Request) -> &'static [u8] {
    match v {
        Request::Lookup { .. } => REQUEST_LOOKUP,
        Request::Getattr { .. } => REQUEST_GETATTR,
        Request::Setattr { .. } => REQUEST_SETATTR,
        Request::Mknod { .. } => REQUEST_MKNOD,
        Request::Mkdir { .. } => REQUEST_MKDIR,
        Request::Symlink { .. } => REQUEST_SYMLINK,
        Request::Link { .. } => REQUEST_LINK,
        Request::Unlink { .. } => REQUEST_UNLINK,
        Request::Rmdir { .. } => REQUEST_RMDIR,
        Request::Rename { .. } => REQUEST_RENAME,
        Request::Readlink { .. } => REQUEST_READLINK,
        Request::Readdir { .. } => REQUEST_READDIR,
        Request::Readdirplus { .. } => REQUEST_READDIRPLUS,
        Request::Create { .. } => REQUEST_CREATE,
        Request::Open { .. } => REQUEST_OPEN,
        Request::Release { .. } => REQUEST_RELEASE,
        Request::Read { .. } => REQUEST_READ,
        Request::Write { .. } => REQUEST_WRITE,
        Request::Fsync { .. } => REQUEST_FSYNC,
        Request::Fallocate { .. } => REQUEST_FALLOCATE,
        Request::Statfs => REQUEST_STATFS,
        Request::Getxattr { .. } => REQUEST_GETXATTR,
        Request::Setxattr { .. } => REQUEST_SETXATTR,
        Request::Listxattr { .. } => REQUEST_LISTXATTR,
        Request::Removexattr { .. } => REQUEST_REMOVEXATTR,
        Request::Append { .. } => REQUEST_APPEND,
        Request::Getlk { .. } => REQUEST_GETLK,
        Request::Setlk { .. } => REQUEST_SETLK,
        Request::CancelLock { .. } => REQUEST_CANCEL_LOCK,
        Request::ReleaseLocks { .. } => REQUEST_RELEASE_LOCKS,
        Request::ReclaimLock { .. } => REQUEST_RECLAIM_LOCK,
        Request::ReclaimDone => REQUEST_RECLAIM_DONE,
        Request::CreateAgain { .. } => REQUEST_CREATE_AGAIN,
        Request::Lseek { .. } => REQUEST_LSEEK,
        Request::LayoutGet { .. } => REQUEST_LAYOUT_GET,
        Request::LayoutCommit { .. } => REQUEST_LAYOUT_COMMIT,
        Request::LayoutReturn { .. } => REQUEST_LAYOUT_RETURN,
        Request::VolumeLocation => REQUEST_VOLUME_LOCATION,
        Request::StoreClient { .. } => REQUEST_STORE_CLIENT,
        Request::Reopen { .. } => REQUEST_REOPEN,
    }
}

// ---- Response ----

#[rustfmt::skip]
const RESPONSE_EMPTY: &[u8] = &[
    0, 0, 0, 0,                 // Response::Empty (variant 0)
];

#[test]
fn response_empty() {
    let v = Response::Empty;
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_ATTR: &[u8] = &[
    1, 0, 0, 0,                 // Response::Attr (variant 1)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
    3, 0, 0, 0,                 // generation
    0, 16, 0, 0, 0, 0, 0, 0,    // size
    8, 0, 0, 0, 0, 0, 0, 0,     // blocks
    1, 241, 83, 101, 0, 0, 0, 0, // atime.sec
    1, 0, 0, 0,                 // atime.nsec
    2, 241, 83, 101, 0, 0, 0, 0, // mtime.sec
    2, 0, 0, 0,                 // mtime.nsec
    3, 241, 83, 101, 0, 0, 0, 0, // ctime.sec
    3, 0, 0, 0,                 // ctime.nsec
    0, 0, 0, 0,                 // kind: FileKind::RegularFile (variant 0)
    164, 1,                     // perm
    1, 0, 0, 0,                 // nlink
    232, 3, 0, 0,               // uid
    100, 0, 0, 0,               // gid
    0, 0, 0, 0,                 // rdev
];

#[test]
fn response_attr() {
    let v = Response::Attr(Attr {
        ino: 9,
        generation: 3,
        size: 4096,
        blocks: 8,
        atime: TimeSpec {
            sec: 1700000001,
            nsec: 1,
        },
        mtime: TimeSpec {
            sec: 1700000002,
            nsec: 2,
        },
        ctime: TimeSpec {
            sec: 1700000003,
            nsec: 3,
        },
        kind: FileKind::RegularFile,
        perm: 0o644,
        nlink: 1,
        uid: 1000,
        gid: 100,
        rdev: 0,
    });
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_ENTRIES: &[u8] = &[
    2, 0, 0, 0,                 // Response::Entries (variant 2)
    1, 0, 0, 0, 0, 0, 0, 0,     //  length
    9, 0, 0, 0, 0, 0, 0, 0,     // [0].ino
    3, 0, 0, 0, 0, 0, 0, 0,     // [0].offset
    1, 0, 0, 0,                 // [0].kind: FileKind::Directory (variant 1)
    1, 0, 0, 0, 0, 0, 0, 0,     // [0].name length
    b'd',                       // [0].name
];

#[test]
fn response_entries() {
    let v = Response::Entries(vec![DirEntry {
        ino: 9,
        offset: 3,
        kind: FileKind::Directory,
        name: b"d".to_vec(),
    }]);
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_ENTRIES_PLUS: &[u8] = &[
    3, 0, 0, 0,                 // Response::EntriesPlus (variant 3)
    1, 0, 0, 0, 0, 0, 0, 0,     //  length
    9, 0, 0, 0, 0, 0, 0, 0,     // [0].0.ino
    3, 0, 0, 0, 0, 0, 0, 0,     // [0].0.offset
    1, 0, 0, 0,                 // [0].0.kind: FileKind::Directory (variant 1)
    1, 0, 0, 0, 0, 0, 0, 0,     // [0].0.name length
    b'd',                       // [0].0.name
    9, 0, 0, 0, 0, 0, 0, 0,     // [0].1.ino
    3, 0, 0, 0,                 // [0].1.generation
    0, 16, 0, 0, 0, 0, 0, 0,    // [0].1.size
    8, 0, 0, 0, 0, 0, 0, 0,     // [0].1.blocks
    1, 241, 83, 101, 0, 0, 0, 0, // [0].1.atime.sec
    1, 0, 0, 0,                 // [0].1.atime.nsec
    2, 241, 83, 101, 0, 0, 0, 0, // [0].1.mtime.sec
    2, 0, 0, 0,                 // [0].1.mtime.nsec
    3, 241, 83, 101, 0, 0, 0, 0, // [0].1.ctime.sec
    3, 0, 0, 0,                 // [0].1.ctime.nsec
    0, 0, 0, 0,                 // [0].1.kind: FileKind::RegularFile (variant 0)
    164, 1,                     // [0].1.perm
    1, 0, 0, 0,                 // [0].1.nlink
    232, 3, 0, 0,               // [0].1.uid
    100, 0, 0, 0,               // [0].1.gid
    0, 0, 0, 0,                 // [0].1.rdev
];

#[test]
fn response_entries_plus() {
    let v = Response::EntriesPlus(vec![(
        DirEntry {
            ino: 9,
            offset: 3,
            kind: FileKind::Directory,
            name: b"d".to_vec(),
        },
        Attr {
            ino: 9,
            generation: 3,
            size: 4096,
            blocks: 8,
            atime: TimeSpec {
                sec: 1700000001,
                nsec: 1,
            },
            mtime: TimeSpec {
                sec: 1700000002,
                nsec: 2,
            },
            ctime: TimeSpec {
                sec: 1700000003,
                nsec: 3,
            },
            kind: FileKind::RegularFile,
            perm: 0o644,
            nlink: 1,
            uid: 1000,
            gid: 100,
            rdev: 0,
        },
    )]);
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_DATA: &[u8] = &[
    4, 0, 0, 0,                 // Response::Data (variant 4)
];

#[test]
fn response_data() {
    let v = Response::Data;
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_WRITTEN: &[u8] = &[
    5, 0, 0, 0,                 // Response::Written (variant 5)
    0, 16, 0, 0,                // 
];

#[test]
fn response_written() {
    let v = Response::Written(4096);
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_BYTES: &[u8] = &[
    6, 0, 0, 0,                 // Response::Bytes (variant 6)
    6, 0, 0, 0, 0, 0, 0, 0,     //  length
    b't', b'a', b'r', b'g', b'e', b't', // 
];

#[test]
fn response_bytes() {
    let v = Response::Bytes(b"target".to_vec());
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_NAMES: &[u8] = &[
    7, 0, 0, 0,                 // Response::Names (variant 7)
    2, 0, 0, 0, 0, 0, 0, 0,     //  length
    6, 0, 0, 0, 0, 0, 0, 0,     // [0] length
    b'u', b's', b'e', b'r', b'.', b'a', // [0]
    6, 0, 0, 0, 0, 0, 0, 0,     // [1] length
    b'u', b's', b'e', b'r', b'.', b'b', // [1]
];

#[test]
fn response_names() {
    let v = Response::Names(vec![b"user.a".to_vec(), b"user.b".to_vec()]);
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_STAT_FS: &[u8] = &[
    8, 0, 0, 0,                 // Response::StatFs (variant 8)
    232, 3, 0, 0, 0, 0, 0, 0,   // blocks
    244, 1, 0, 0, 0, 0, 0, 0,   // bfree
    144, 1, 0, 0, 0, 0, 0, 0,   // bavail
    100, 0, 0, 0, 0, 0, 0, 0,   // files
    50, 0, 0, 0, 0, 0, 0, 0,    // ffree
    0, 16, 0, 0,                // bsize
    255, 0, 0, 0,               // namelen
];

#[test]
fn response_stat_fs() {
    let v = Response::StatFs(StatFs {
        blocks: 1000,
        bfree: 500,
        bavail: 400,
        files: 100,
        ffree: 50,
        bsize: 4096,
        namelen: 255,
    });
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_LOCK: &[u8] = &[
    9, 0, 0, 0,                 // Response::Lock (variant 9)
    10, 0, 0, 0, 0, 0, 0, 0,    // range.start
    255, 255, 255, 255, 255, 255, 255, 255, // range.end
    2, 0, 0, 0,                 // kind: LockKind::Unlock (2)
    0, 0, 0, 0,                 // pid
];

#[test]
fn response_lock() {
    let v = Response::Lock {
        range: LockRange {
            start: 10,
            end: u64::MAX,
        },
        kind: LockKind::Unlock,
        pid: 0,
    };
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_LOCK_QUEUED: &[u8] = &[
    10, 0, 0, 0,                // Response::LockQueued (variant 10)
];

#[test]
fn response_lock_queued() {
    let v = Response::LockQueued;
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_CANCELLED: &[u8] = &[
    11, 0, 0, 0,                // Response::Cancelled (variant 11)
    1,                          // 
];

#[test]
fn response_cancelled() {
    let v = Response::Cancelled(true);
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_OFFSET: &[u8] = &[
    12, 0, 0, 0,                // Response::Offset (variant 12)
    0, 0, 0, 0, 1, 0, 0, 0,     // 
];

#[test]
fn response_offset() {
    let v = Response::Offset(1 << 32);
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_LAYOUT: &[u8] = &[
    13, 0, 0, 0,                // Response::Layout (variant 13)
    1, 48, 0, 0, 0, 0, 0, 0,    // size
    2, 0, 0, 0, 0, 0, 0, 0,     // extents: length
    0, 0, 0, 0, 0, 0, 0, 0,     // [0].offset
    0, 16, 0, 0, 0, 0, 0, 0,    // [0].len
    1,                          // [0].disk: Some
    0, 0, 16, 0, 0, 0, 0, 0,    // [0].disk
    0,                          // [0].reserved
    0, 16, 0, 0, 0, 0, 0, 0,    // [1].offset
    0, 32, 0, 0, 0, 0, 0, 0,    // [1].len
    0,                          // [1].disk: None
    1,                          // [1].reserved
];

#[test]
fn response_layout() {
    let v = Response::Layout(Layout {
        size: 12289,
        extents: vec![
            Extent {
                offset: 0,
                len: 4096,
                disk: Some(1 << 20),
                reserved: false,
            },
            Extent {
                offset: 4096,
                len: 8192,
                disk: None,
                reserved: true,
            },
        ],
    });
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const RESPONSE_LOCATION: &[u8] = &[
    14, 0, 0, 0,                // Response::Location (variant 14)
    0, 0, 0, 0,                 // VolumeAt::Local (variant 0)
    5, 0, 0, 0, 0, 0, 0, 0,     // length
    b'/', b'v', b'.', b'i', b'm', //
];

#[test]
fn response_location() {
    let v = Response::Location(VolumeAt::Local("/v.im".to_string()));
    pin(&v, response_golden(&v));
}

#[rustfmt::skip]
const VOLUME_AT_RADOS: &[u8] = &[
    1, 0, 0, 0,                 // VolumeAt::Rados (variant 1)
    3, 0, 0, 0, 0, 0, 0, 0,     // pool: length
    b'r', b'b', b'd',           //
    2, 0, 0, 0, 0, 0, 0, 0,     // name: length
    b'v', b'1',                 //
];

#[test]
fn volume_at_rados() {
    let v = VolumeAt::Rados {
        pool: "rbd".to_string(),
        name: "v1".to_string(),
    };
    pin(&v, VOLUME_AT_RADOS);
}

/// Every variant of `Response` has its golden bytes.
fn response_golden(v: &Response) -> &'static [u8] {
    match v {
        Response::Empty => RESPONSE_EMPTY,
        Response::Attr(_) => RESPONSE_ATTR,
        Response::Entries(_) => RESPONSE_ENTRIES,
        Response::EntriesPlus(_) => RESPONSE_ENTRIES_PLUS,
        Response::Data => RESPONSE_DATA,
        Response::Written(_) => RESPONSE_WRITTEN,
        Response::Bytes(_) => RESPONSE_BYTES,
        Response::Names(_) => RESPONSE_NAMES,
        Response::StatFs(_) => RESPONSE_STAT_FS,
        Response::Lock { .. } => RESPONSE_LOCK,
        Response::LockQueued => RESPONSE_LOCK_QUEUED,
        Response::Cancelled(_) => RESPONSE_CANCELLED,
        Response::Offset(_) => RESPONSE_OFFSET,
        Response::Layout(_) => RESPONSE_LAYOUT,
        Response::Location(_) => RESPONSE_LOCATION,
    }
}

// ---- Push ----

#[rustfmt::skip]
const PUSH_INVAL_INODE: &[u8] = &[
    0, 0, 0, 0,                 // Push::InvalInode (variant 0)
    9, 0, 0, 0, 0, 0, 0, 0,     // ino
];

#[test]
fn push_inval_inode() {
    let v = Push::InvalInode { ino: 9 };
    pin(&v, push_golden(&v));
}

#[rustfmt::skip]
const PUSH_INVAL_ENTRY: &[u8] = &[
    1, 0, 0, 0,                 // Push::InvalEntry (variant 1)
    1, 0, 0, 0, 0, 0, 0, 0,     // parent
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'n',                       // name
];

#[test]
fn push_inval_entry() {
    let v = Push::InvalEntry {
        parent: 1,
        name: b"n".to_vec(),
    };
    pin(&v, push_golden(&v));
}

#[rustfmt::skip]
const PUSH_SHUTDOWN: &[u8] = &[
    2, 0, 0, 0,                 // Push::Shutdown (variant 2)
];

#[test]
fn push_shutdown() {
    let v = Push::Shutdown;
    pin(&v, push_golden(&v));
}

#[rustfmt::skip]
const PUSH_LOCK_GRANTED: &[u8] = &[
    3, 0, 0, 0,                 // Push::LockGranted (variant 3)
    12, 0, 0, 0, 0, 0, 0, 0,    // wait
];

#[test]
fn push_lock_granted() {
    let v = Push::LockGranted { wait: 12 };
    pin(&v, push_golden(&v));
}

#[rustfmt::skip]
const PUSH_DURABLE: &[u8] = &[
    4, 0, 0, 0,                 // Push::Durable (variant 4)
    44, 1, 0, 0, 0, 0, 0, 0,    // below
];

#[test]
fn push_durable() {
    let v = Push::Durable { below: 300 };
    pin(&v, push_golden(&v));
}

#[rustfmt::skip]
const PUSH_LAYOUT_RECALL: &[u8] = &[
    5, 0, 0, 0,                 // Push::LayoutRecall (variant 5)
    7, 0, 0, 0, 0, 0, 0, 0,     // ino
    232, 3, 0, 0, 0, 0, 0, 0,   // waited_ms
];

#[test]
fn push_layout_recall() {
    let v = Push::LayoutRecall {
        ino: 7,
        waited_ms: 1000,
    };
    pin(&v, push_golden(&v));
}

/// Every variant of `Push` has its golden bytes.
fn push_golden(v: &Push) -> &'static [u8] {
    match v {
        Push::InvalInode { .. } => PUSH_INVAL_INODE,
        Push::InvalEntry { .. } => PUSH_INVAL_ENTRY,
        Push::Shutdown => PUSH_SHUTDOWN,
        Push::LockGranted { .. } => PUSH_LOCK_GRANTED,
        Push::Durable { .. } => PUSH_DURABLE,
        Push::LayoutRecall { .. } => PUSH_LAYOUT_RECALL,
    }
}

// ---- ClientMsg ----

#[rustfmt::skip]
const CLIENT_MSG_HELLO: &[u8] = &[
    0, 0, 0, 0,                 // ClientMsg::Hello (variant 0)
    3, 0, 0, 0,                 // version
    2, 0, 0, 0, 0, 0, 0, 0,     // node_id length
    b'n', b'1',                 // node_id
    7, 0, 0, 0, 0, 0, 0, 0,     // mount_id
    0,                          // read_only
    1, 0, 0, 0, 0, 0, 0, 0,     // nonce length
    171,                        // nonce
    1, 0, 0, 0, 0, 0, 0, 0,     // export length
    b'e',                       // export
];

#[test]
fn client_msg_hello() {
    let v = ClientMsg::Hello {
        version: 3,
        node_id: "n1".into(),
        mount_id: 7,
        read_only: false,
        nonce: vec![0xAB],
        export: "e".into(),
    };
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_CALL: &[u8] = &[
    1, 0, 0, 0,                 // ClientMsg::Call (variant 1)
    5, 0, 0, 0, 0, 0, 0, 0,     // id
    1, 0, 0, 0,                 // req: Request::Getattr (variant 1)
    9, 0, 0, 0, 0, 0, 0, 0,     // req.ino
];

#[test]
fn client_msg_call() {
    let v = ClientMsg::Call {
        id: 5,
        req: Request::Getattr { ino: 9 },
    };
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_HEARTBEAT: &[u8] = &[
    2, 0, 0, 0,                 // ClientMsg::Heartbeat (variant 2)
];

#[test]
fn client_msg_heartbeat() {
    let v = ClientMsg::Heartbeat;
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_RESUME: &[u8] = &[
    3, 0, 0, 0,                 // ClientMsg::Resume (variant 3)
    3, 0, 0, 0,                 // version
    1, 0, 0, 0, 0, 0, 0, 0,     // node_id length
    b'n',                       // node_id
    2, 0, 0, 0, 0, 0, 0, 0,     // mount_id
    1,                          // read_only
    9, 0, 0, 0, 0, 0, 0, 0,     // session
    1, 0, 0, 0, 0, 0, 0, 0,     // secret length
    94,                         // secret
    0, 0, 0, 0, 0, 0, 0, 0,     // nonce length
    0, 0, 0, 0, 0, 0, 0, 0,     // export length
];

#[test]
fn client_msg_resume() {
    let v = ClientMsg::Resume {
        version: 3,
        node_id: "n".into(),
        mount_id: 2,
        read_only: true,
        session: 9,
        secret: vec![0x5E],
        nonce: Vec::new(),
        export: String::new(),
    };
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_ACK: &[u8] = &[
    4, 0, 0, 0,                 // ClientMsg::Ack (variant 4)
    44, 1, 0, 0, 0, 0, 0, 0,    // below
];

#[test]
fn client_msg_ack() {
    let v = ClientMsg::Ack { below: 300 };
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_GOODBYE: &[u8] = &[
    5, 0, 0, 0,                 // ClientMsg::Goodbye (variant 5)
];

#[test]
fn client_msg_goodbye() {
    let v = ClientMsg::Goodbye;
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_PROOF: &[u8] = &[
    6, 0, 0, 0,                 // ClientMsg::Proof (variant 6)
    2, 0, 0, 0, 0, 0, 0, 0,     // mac length
    1, 2,                       // mac
];

#[test]
fn client_msg_proof() {
    let v = ClientMsg::Proof {
        mac: vec![0x01, 0x02],
    };
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_STATUS: &[u8] = &[
    7, 0, 0, 0,                 // ClientMsg::Status (variant 7)
    3, 0, 0, 0,                 // version
    1, 0, 0, 0, 0, 0, 0, 0,     // nonce length
    171,                        // nonce
];

#[test]
fn client_msg_status() {
    let v = ClientMsg::Status {
        version: 3,
        nonce: vec![0xAB],
    };
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_CALL_AS: &[u8] = &[
    8, 0, 0, 0,                 // ClientMsg::CallAs (variant 8)
    6, 0, 0, 0, 0, 0, 0, 0,     // id
    1, 0, 0, 0,                 // req: Request::Getattr (variant 1)
    9, 0, 0, 0, 0, 0, 0, 0,     // req.ino
    232, 3, 0, 0,               // cred.uid
    100, 0, 0, 0,               // cred.gid
    2, 0, 0, 0, 0, 0, 0, 0,     // cred.groups length
    100, 0, 0, 0,               // cred.groups[0]
    27, 0, 0, 0,                // cred.groups[1]
];

#[test]
fn client_msg_call_as() {
    let v = ClientMsg::CallAs {
        id: 6,
        req: Request::Getattr { ino: 9 },
        cred: Cred {
            uid: 1000,
            gid: 100,
            groups: vec![100, 27],
        },
    };
    pin(&v, client_msg_golden(&v));
}

#[rustfmt::skip]
const CLIENT_MSG_ADMIN: &[u8] = &[
    9, 0, 0, 0,                 // ClientMsg::Admin (variant 9)
    3, 0, 0, 0,                 // version
    1, 0, 0, 0, 0, 0, 0, 0,     // nonce length
    171,                        // nonce
    3, 0, 0, 0,                 // cmd: ExportCmd::Delete (variant 3)
    1, 0, 0, 0, 0, 0, 0, 0,     // cmd.name length
    b'a',                       // cmd.name
];

#[test]
fn client_msg_admin() {
    let v = ClientMsg::Admin {
        version: 3,
        nonce: vec![0xAB],
        cmd: ExportCmd::Delete { name: "a".into() },
    };
    pin(&v, client_msg_golden(&v));
}

/// Every variant of `ClientMsg` has its golden bytes.
fn client_msg_golden(v: &ClientMsg) -> &'static [u8] {
    match v {
        ClientMsg::Hello { .. } => CLIENT_MSG_HELLO,
        ClientMsg::Call { .. } => CLIENT_MSG_CALL,
        ClientMsg::Heartbeat => CLIENT_MSG_HEARTBEAT,
        ClientMsg::Resume { .. } => CLIENT_MSG_RESUME,
        ClientMsg::Ack { .. } => CLIENT_MSG_ACK,
        ClientMsg::Goodbye => CLIENT_MSG_GOODBYE,
        ClientMsg::Proof { .. } => CLIENT_MSG_PROOF,
        ClientMsg::Status { .. } => CLIENT_MSG_STATUS,
        ClientMsg::CallAs { .. } => CLIENT_MSG_CALL_AS,
        ClientMsg::Admin { .. } => CLIENT_MSG_ADMIN,
    }
}

// ---- ServerMsg ----

#[rustfmt::skip]
const SERVER_MSG_WELCOME: &[u8] = &[
    0, 0, 0, 0,                 // ServerMsg::Welcome (variant 0)
    3, 0, 0, 0,                 // version
    9, 0, 0, 0, 0, 0, 0, 0,     // session
    15, 0, 0, 0,                // lease_secs
    77, 0, 0, 0, 0, 0, 0, 0,    // boot
    1, 0, 0, 0, 0, 0, 0, 0,     // secret length
    94,                         // secret
    0,                          // clean_restart
];

#[test]
fn server_msg_welcome() {
    let v = ServerMsg::Welcome {
        version: 3,
        session: 9,
        lease_secs: 15,
        boot: 77,
        secret: vec![0x5E],
        clean_restart: false,
    };
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_REFUSED: &[u8] = &[
    1, 0, 0, 0,                 // ServerMsg::Refused (variant 1)
    2, 0, 0, 0, 0, 0, 0, 0,     // reason length
    b'n', b'o',                 // reason
];

#[test]
fn server_msg_refused() {
    let v = ServerMsg::Refused {
        reason: "no".into(),
    };
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_REPLY: &[u8] = &[
    2, 0, 0, 0,                 // ServerMsg::Reply (variant 2)
    3, 0, 0, 0, 0, 0, 0, 0,     // id
    0, 0, 0, 0,                 // result: Ok (variant 0)
    5, 0, 0, 0,                 // result: Response::Written (variant 5)
    0, 16, 0, 0,                // result
];

#[test]
fn server_msg_reply() {
    let v = ServerMsg::Reply {
        id: 3,
        result: Ok(Response::Written(4096)),
    };
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_PUSH: &[u8] = &[
    3, 0, 0, 0,                 // ServerMsg::Push (variant 3)
    4, 0, 0, 0,                 // Push::Durable (variant 4)
    44, 1, 0, 0, 0, 0, 0, 0,    // below
];

#[test]
fn server_msg_push() {
    let v = ServerMsg::Push(Push::Durable { below: 300 });
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_CHALLENGE: &[u8] = &[
    4, 0, 0, 0,                 // ServerMsg::Challenge (variant 4)
    1, 0, 0, 0, 0, 0, 0, 0,     // nonce length
    1,                          // nonce
    1, 0, 0, 0, 0, 0, 0, 0,     // mac length
    2,                          // mac
];

#[test]
fn server_msg_challenge() {
    let v = ServerMsg::Challenge {
        nonce: vec![0x01],
        mac: vec![0x02],
    };
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_PENDING: &[u8] = &[
    5, 0, 0, 0,                 // ServerMsg::Pending (variant 5)
    4, 0, 0, 0, 0, 0, 0, 0,     // reason length
    b'w', b'a', b'i', b't',     // reason
];

#[test]
fn server_msg_pending() {
    let v = ServerMsg::Pending {
        reason: "wait".into(),
    };
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_STATUS: &[u8] = &[
    6, 0, 0, 0,                 // ServerMsg::Status (variant 6)
    1, 0, 0, 0, 0, 0, 0, 0,     //  length
    7, 0, 0, 0, 0, 0, 0, 0,     // [0].session
    2, 0, 0, 0, 0, 0, 0, 0,     // [0].node_id length
    b'n', b'1',                 // [0].node_id
    2, 0, 0, 0, 0, 0, 0, 0,     // [0].mount_id
    0,                          // [0].read_only
    1, 0, 0, 0, 0, 0, 0, 0,     // [0].addr length
    b'a',                       // [0].addr
    220, 5, 0, 0, 0, 0, 0, 0,   // [0].last_heard_ms
    1,                          // [0].connected
    3, 0, 0, 0,                 // [0].open_files
    1, 0, 0, 0,                 // [0].locks
];

#[test]
fn server_msg_status() {
    let v = ServerMsg::Status(vec![SessionStatus {
        session: 7,
        node_id: "n1".into(),
        mount_id: 2,
        read_only: false,
        addr: "a".into(),
        last_heard_ms: 1500,
        connected: true,
        open_files: 3,
        locks: 1,
    }]);
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_STANDBY: &[u8] = &[
    8, 0, 0, 0,                 // ServerMsg::Standby (variant 8)
    2, 0, 0, 0, 0, 0, 0, 0,     // active length
    b'h', b'1',                 // active
];

#[test]
fn server_msg_standby() {
    let v = ServerMsg::Standby {
        active: "h1".into(),
    };
    pin(&v, server_msg_golden(&v));
}

#[rustfmt::skip]
const SERVER_MSG_REPLY_ERR: &[u8] = &[
    2, 0, 0, 0,                 // ServerMsg::Reply (variant 2)
    3, 0, 0, 0, 0, 0, 0, 0,     // id
    1, 0, 0, 0,                 // result: Err (variant 1)
    2, 0, 0, 0,                 // result: ErrorCode::NotFound (2)
];

#[test]
fn server_msg_reply_err() {
    pin(
        &ServerMsg::Reply {
            id: 3,
            result: Err(ErrorCode::NotFound),
        },
        SERVER_MSG_REPLY_ERR,
    );
}

#[rustfmt::skip]
const SERVER_MSG_EXPORTS: &[u8] = &[
    7, 0, 0, 0,                 // ServerMsg::Exports (variant 7)
    1, 0, 0, 0,                 // Err (variant 1)
    2, 0, 0, 0, 0, 0, 0, 0,     // reason length
    b'n', b'o',                 // reason
];

#[rustfmt::skip]
const SERVER_MSG_SPACE: &[u8] = &[
    9, 0, 0, 0,                 // ServerMsg::Space (variant 9)
    0, 0, 0, 0,                 // Ok (variant 0)
    0, 0, 16, 0, 0, 0, 0, 0,    // bytes
    0, 16, 0, 0, 0, 0, 0, 0,    // bytes_free
    64, 0, 0, 0, 0, 0, 0, 0,    // inodes
    9, 0, 0, 0, 0, 0, 0, 0,     // inodes_free
];

#[test]
fn server_msg_space() {
    let v = ServerMsg::Space(Ok(VolumeSpace {
        bytes: 1 << 20,
        bytes_free: 4096,
        inodes: 64,
        inodes_free: 9,
    }));
    pin(&v, server_msg_golden(&v));
}

#[test]
fn server_msg_exports() {
    let v = ServerMsg::Exports(Err("no".into()));
    pin(&v, server_msg_golden(&v));
}

// ---- exports ----

#[rustfmt::skip]
const EXPORT_INFO: &[u8] = &[
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'a',                       // name
    3, 0, 0, 0,                 // mode: AccessMode::Rwop (variant 3)
    0, 16, 0, 0, 0, 0, 0, 0,    // bytes
    0, 32, 0, 0, 0, 0, 0, 0,    // bytes_used
    64, 0, 0, 0, 0, 0, 0, 0,    // inodes
    1, 0, 0, 0, 0, 0, 0, 0,     // inodes_used
    1, 0, 0, 0, 0, 0, 0, 0,     // nodes length
    1, 0, 0, 0, 0, 0, 0, 0,     // nodes[0] length
    b'n',                       // nodes[0]
];

#[test]
fn export_info() {
    let v = ExportInfo {
        name: "a".into(),
        mode: AccessMode::Rwop,
        bytes: 4096,
        bytes_used: 8192,
        inodes: 64,
        inodes_used: 1,
        nodes: vec!["n".into()],
    };
    pin(&v, EXPORT_INFO);
}

/// Every access mode and its four bytes: append-only, by variant.
#[test]
fn access_modes() {
    for (i, m) in AccessMode::ALL.into_iter().enumerate() {
        let golden: [u8; 4] = match m {
            AccessMode::Rwx => [0, 0, 0, 0],
            AccessMode::Rox => [1, 0, 0, 0],
            AccessMode::Rwo => [2, 0, 0, 0],
            AccessMode::Rwop => [3, 0, 0, 0],
        };
        assert_eq!(golden[0] as usize, i);
        pin(&m, &golden);
    }
}

#[rustfmt::skip]
const EXPORT_CMD_CREATE: &[u8] = &[
    0, 0, 0, 0,                 // ExportCmd::Create (variant 0)
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'a',                       // name
    0, 16, 0, 0, 0, 0, 0, 0,    // bytes
    9, 0, 0, 0, 0, 0, 0, 0,     // inodes
    2, 0, 0, 0,                 // mode: AccessMode::Rwo (variant 2)
];

#[rustfmt::skip]
const EXPORT_CMD_LIST: &[u8] = &[
    1, 0, 0, 0,                 // ExportCmd::List (variant 1)
];

#[rustfmt::skip]
const EXPORT_CMD_RESIZE: &[u8] = &[
    2, 0, 0, 0,                 // ExportCmd::Resize (variant 2)
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'a',                       // name
    0, 32, 0, 0, 0, 0, 0, 0,    // bytes
    0, 0, 0, 0, 0, 0, 0, 0,     // inodes
];

#[rustfmt::skip]
const EXPORT_CMD_DELETE: &[u8] = &[
    3, 0, 0, 0,                 // ExportCmd::Delete (variant 3)
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'a',                       // name
];

#[rustfmt::skip]
const EXPORT_CMD_SPACE: &[u8] = &[
    4, 0, 0, 0,                 // ExportCmd::Space (variant 4)
];

#[rustfmt::skip]
const EXPORT_CMD_CREATE_OWNED: &[u8] = &[
    5, 0, 0, 0,                 // ExportCmd::CreateOwned (variant 5)
    1, 0, 0, 0, 0, 0, 0, 0,     // name length
    b'a',                       // name
    0, 16, 0, 0, 0, 0, 0, 0,    // bytes
    0, 0, 0, 0, 0, 0, 0, 0,     // inodes
    0, 0, 0, 0,                 // mode: AccessMode::Rwx (variant 0)
    232, 3, 0, 0,               // uid 1000
    208, 7, 0, 0,               // gid 2000
    255, 1, 0, 0,               // perm 0o777
];

#[test]
fn export_cmds() {
    let name = || "a".to_string();
    let cmds = [
        ExportCmd::Create {
            name: name(),
            bytes: 4096,
            inodes: 9,
            mode: AccessMode::Rwo,
        },
        ExportCmd::List,
        ExportCmd::Resize {
            name: name(),
            bytes: 8192,
            inodes: 0,
        },
        ExportCmd::Delete { name: name() },
        ExportCmd::Space,
        ExportCmd::CreateOwned {
            name: name(),
            bytes: 4096,
            inodes: 0,
            mode: AccessMode::Rwx,
            uid: 1000,
            gid: 2000,
            perm: 0o777,
        },
    ];
    for c in cmds {
        let golden = match c {
            ExportCmd::Create { .. } => EXPORT_CMD_CREATE,
            ExportCmd::List => EXPORT_CMD_LIST,
            ExportCmd::Resize { .. } => EXPORT_CMD_RESIZE,
            ExportCmd::Delete { .. } => EXPORT_CMD_DELETE,
            ExportCmd::Space => EXPORT_CMD_SPACE,
            ExportCmd::CreateOwned { .. } => EXPORT_CMD_CREATE_OWNED,
        };
        pin(&c, golden);
    }
}

/// Every variant of `ServerMsg` has its golden bytes.
fn server_msg_golden(v: &ServerMsg) -> &'static [u8] {
    match v {
        ServerMsg::Welcome { .. } => SERVER_MSG_WELCOME,
        ServerMsg::Refused { .. } => SERVER_MSG_REFUSED,
        ServerMsg::Reply { .. } => SERVER_MSG_REPLY,
        ServerMsg::Push(_) => SERVER_MSG_PUSH,
        ServerMsg::Challenge { .. } => SERVER_MSG_CHALLENGE,
        ServerMsg::Pending { .. } => SERVER_MSG_PENDING,
        ServerMsg::Status(_) => SERVER_MSG_STATUS,
        ServerMsg::Exports(_) => SERVER_MSG_EXPORTS,
        ServerMsg::Standby { .. } => SERVER_MSG_STANDBY,
        ServerMsg::Space(_) => SERVER_MSG_SPACE,
    }
}

// ---- error codes ----

/// Every error code and its four bytes: append-only, by number.
#[rustfmt::skip]
const ERROR_CODES: &[(ErrorCode, [u8; 4])] = &[
    (ErrorCode::NotPermitted, [1, 0, 0, 0]), // ENotPermitted
    (ErrorCode::NotFound, [2, 0, 0, 0]), // ENotFound
    (ErrorCode::Interrupted, [4, 0, 0, 0]), // EInterrupted
    (ErrorCode::Io, [5, 0, 0, 0]), // EIo
    (ErrorCode::PastEnd, [6, 0, 0, 0]), // EPastEnd
    (ErrorCode::WouldBlock, [11, 0, 0, 0]), // EWouldBlock
    (ErrorCode::AccessDenied, [13, 0, 0, 0]), // EAccessDenied
    (ErrorCode::Exists, [17, 0, 0, 0]), // EExists
    (ErrorCode::CrossDevice, [18, 0, 0, 0]), // ECrossDevice
    (ErrorCode::NotDir, [20, 0, 0, 0]), // ENotDir
    (ErrorCode::IsDir, [21, 0, 0, 0]), // EIsDir
    (ErrorCode::Invalid, [22, 0, 0, 0]), // EInvalid
    (ErrorCode::FileTooBig, [27, 0, 0, 0]), // EFileTooBig
    (ErrorCode::NoSpace, [28, 0, 0, 0]), // ENoSpace
    (ErrorCode::ReadOnly, [30, 0, 0, 0]), // EReadOnly
    (ErrorCode::TooManyLinks, [31, 0, 0, 0]), // ETooManyLinks
    (ErrorCode::Range, [34, 0, 0, 0]), // ERange
    (ErrorCode::Deadlock, [35, 0, 0, 0]), // EDeadlock
    (ErrorCode::NameTooLong, [36, 0, 0, 0]), // ENameTooLong
    (ErrorCode::NoLock, [37, 0, 0, 0]), // ENoLock
    (ErrorCode::NotEmpty, [39, 0, 0, 0]), // ENotEmpty
    (ErrorCode::NoAttr, [61, 0, 0, 0]), // ENoAttr
    (ErrorCode::NotSupported, [95, 0, 0, 0]), // ENotSupported
    (ErrorCode::Stale, [116, 0, 0, 0]), // EStale
    (ErrorCode::DiskQuota, [122, 0, 0, 0]), // EDiskQuota
];

#[test]
fn error_codes() {
    assert_eq!(ERROR_CODES.len(), ErrorCode::ALL.len());
    for (code, golden) in ERROR_CODES {
        pin(code, golden);
        assert_eq!(error_code_golden(*code), golden);
    }
    // A code from a newer peer reads as an I/O error; the frame still decodes.
    let body = [4, 0, 0, 0, 200, 0, 0, 0];
    assert_eq!(decode_body::<ErrorCode>(&body).unwrap().0, ErrorCode::Io);
}

/// Every error code has its golden bytes.
fn error_code_golden(c: ErrorCode) -> &'static [u8; 4] {
    let i = match c {
        ErrorCode::NotPermitted => 0,
        ErrorCode::NotFound => 1,
        ErrorCode::Interrupted => 2,
        ErrorCode::Io => 3,
        ErrorCode::PastEnd => 4,
        ErrorCode::WouldBlock => 5,
        ErrorCode::AccessDenied => 6,
        ErrorCode::Exists => 7,
        ErrorCode::CrossDevice => 8,
        ErrorCode::NotDir => 9,
        ErrorCode::IsDir => 10,
        ErrorCode::Invalid => 11,
        ErrorCode::FileTooBig => 12,
        ErrorCode::NoSpace => 13,
        ErrorCode::ReadOnly => 14,
        ErrorCode::TooManyLinks => 15,
        ErrorCode::Range => 16,
        ErrorCode::Deadlock => 17,
        ErrorCode::NameTooLong => 18,
        ErrorCode::NoLock => 19,
        ErrorCode::NotEmpty => 20,
        ErrorCode::NoAttr => 21,
        ErrorCode::NotSupported => 22,
        ErrorCode::Stale => 23,
        ErrorCode::DiskQuota => 24,
    };
    &ERROR_CODES[i].1
}
