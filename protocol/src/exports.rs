//! Exports on the wire: the access modes a mount is admitted by, and what an administrator
//! asks of a running server (`ClientMsg::Admin`) and is answered (`ServerMsg::Exports`, or
//! `ServerMsg::Space`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Kubernetes' access modes, enforced by the server for every mount of an export (or of
/// the whole volume).
///
/// Append-only: encoded by variant index (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AccessMode {
    /// ReadWriteMany: any number of read-write mounts, anywhere.
    #[default]
    Rwx,
    /// ReadOnlyMany: every mount is read-only.
    Rox,
    /// ReadWriteOnce: mounts from one node at a time (any number on that node).
    Rwo,
    /// ReadWriteOncePod: one mount in the whole cluster; the next one waits.
    Rwop,
}

impl AccessMode {
    /// Every mode, in the order of their numbers.
    pub const ALL: [AccessMode; 4] = [
        AccessMode::Rwx,
        AccessMode::Rox,
        AccessMode::Rwo,
        AccessMode::Rwop,
    ];

    /// The mode's number, as the volume keeps it with an export (`volume::Quota::tag`).
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The mode numbered `n`, if any.
    pub fn from_number(n: u32) -> Option<AccessMode> {
        AccessMode::ALL.into_iter().find(|m| m.number() == n)
    }

    /// Its short name: rwx, rox, rwo or rwop.
    pub fn name(self) -> &'static str {
        match self {
            AccessMode::Rwx => "rwx",
            AccessMode::Rox => "rox",
            AccessMode::Rwo => "rwo",
            AccessMode::Rwop => "rwop",
        }
    }
}

impl std::fmt::Display for AccessMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AccessMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AccessMode, String> {
        match s.to_ascii_lowercase().as_str() {
            "rwx" | "readwritemany" => Ok(AccessMode::Rwx),
            "rox" | "readonlymany" => Ok(AccessMode::Rox),
            "rwo" | "readwriteonce" => Ok(AccessMode::Rwo),
            "rwop" | "readwriteoncepod" => Ok(AccessMode::Rwop),
            other => Err(format!(
                "unknown access mode {other:?} (expected rwx, rox, rwo or rwop)"
            )),
        }
    }
}

/// What an administrator asks of a running server.
///
/// Append-only: encoded by variant index (golden bytes: `tests/golden.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExportCmd {
    /// Make export `name`: a new directory of the volume, with its own quota and mode.
    Create {
        /// Its name: letters, digits, `-`, `_` and `.`, not starting with `.`.
        name: String,
        /// Its quota in bytes (rounded up to whole 4 KiB blocks).
        bytes: u64,
        /// Its quota in inodes; 0 for one per 16 KiB of `bytes`.
        inodes: u64,
        /// How its mounts are admitted.
        mode: AccessMode,
    },
    /// Every export.
    List,
    /// Give export `name` a new quota; never below what it holds.
    Resize {
        /// The export.
        name: String,
        /// Its new quota in bytes.
        bytes: u64,
        /// Its new quota in inodes; 0 keeps the one it has.
        inodes: u64,
    },
    /// Remove export `name` and everything in it; refused while it is mounted.
    Delete {
        /// The export.
        name: String,
    },
    /// The volume's size and what is free in it (answered by `ServerMsg::Space`): room for
    /// new exports, whose quotas are caps, not reservations.
    Space,
    /// As `Create` (whose root is root's, mode 0777), the export's root directory owned by
    /// `uid`:`gid` with permission bits `perm`.
    CreateOwned {
        /// Its name.
        name: String,
        /// Its quota in bytes.
        bytes: u64,
        /// Its quota in inodes; 0 for one per 16 KiB of `bytes`.
        inodes: u64,
        /// How its mounts are admitted.
        mode: AccessMode,
        /// The owner of its root.
        uid: u32,
        /// The group of its root.
        gid: u32,
        /// Its root's permission bits (at most 0o7777).
        perm: u32,
    },
}

/// The whole volume's size and what is free in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpace {
    /// Bytes of data blocks in all.
    pub bytes: u64,
    /// Bytes of free data blocks.
    pub bytes_free: u64,
    /// Inodes in all.
    pub inodes: u64,
    /// Free inodes.
    pub inodes_free: u64,
}

/// One export as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportInfo {
    /// Its name (`HOST:PORT/NAME` mounts it).
    pub name: String,
    /// How its mounts are admitted.
    pub mode: AccessMode,
    /// Its quota in bytes.
    pub bytes: u64,
    /// Bytes it holds (whole blocks: data, directories, indirect and xattr blocks).
    pub bytes_used: u64,
    /// Its quota in inodes.
    pub inodes: u64,
    /// Inodes it holds, its root included.
    pub inodes_used: u64,
    /// The nodes its sessions run on, one per session (attached or in their lease).
    pub nodes: Vec<String>,
}
