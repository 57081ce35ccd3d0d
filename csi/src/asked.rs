//! What a capability asks of a mount beyond its access mode: its file system type (empty,
//! `rwxfs` or `fuse.rwxfs`; anything else is refused) and its mount flags (a PV's
//! `mountOptions`). The flags honoured are those of `rwxfs mount -o`: `ro` and `rw`, and the
//! kernel's `nosuid`, `nodev`, `noexec` with their opposites `suid`, `dev`, `exec`. Accepted
//! with nothing to do: `noatime`, `nodiratime`, `relatime` and `lazytime` (rwxfs never changes
//! a file's access time when it is read, which is all these ask and more), and fstab's
//! `defaults`, `_netdev` and `async`. Any other flag is INVALID_ARGUMENT, naming it, rather
//! than a mount that silently behaves otherwise than asked.

use client_fuse::MountFlags;
use tonic::Status;

use crate::mountinfo::Entry;
use crate::spec::volume_capability::access_mode::Mode;
use crate::spec::volume_capability::AccessType;
use crate::spec::VolumeCapability;

/// The file system types a capability may name (empty: the driver's own).
const FS_TYPES: &[&str] = &["", "rwxfs", "fuse.rwxfs"];
/// Flags accepted that change nothing (see the module's doc).
const NO_EFFECT: &[&str] = &[
    "noatime",
    "nodiratime",
    "relatime",
    "lazytime",
    "defaults",
    "_netdev",
    "async",
];

/// The mount a publish asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asked {
    /// Mounted read-only: the publish's `readonly`, a reader's access mode, or flag `ro`.
    pub(crate) read_only: bool,
    /// The kernel flags.
    pub(crate) flags: MountFlags,
}

/// Check the capability's type and flags (CreateVolume, ValidateVolumeCapabilities).
pub(crate) fn check(cap: &VolumeCapability) -> Result<(), Status> {
    asked(cap, false).map(|_| ())
}

/// The mount `cap` asks for, `readonly` being the publish's own flag.
pub(crate) fn asked(cap: &VolumeCapability, readonly: bool) -> Result<Asked, Status> {
    let Some(AccessType::Mount(m)) = &cap.access_type else {
        return Err(Status::invalid_argument(
            "a volume capability without a mount access type",
        ));
    };
    if !FS_TYPES.contains(&m.fs_type.as_str()) {
        return Err(Status::invalid_argument(format!(
            "file system type {:?}: rwxfs volumes are rwxfs (give none, or \"rwxfs\")",
            m.fs_type
        )));
    }
    let reader = cap.access_mode.as_ref().is_some_and(|a| {
        a.mode == Mode::MultiNodeReaderOnly as i32 || a.mode == Mode::SingleNodeReaderOnly as i32
    });
    let forced = readonly || reader;
    let (mut ro, mut rw) = (false, false);
    let mut flags = MountFlags::default();
    for f in m.mount_flags.iter().flat_map(|f| f.split(',')) {
        match f.trim() {
            "" => {}
            "ro" => ro = true,
            "rw" => rw = true,
            f if flags.apply(f) || NO_EFFECT.contains(&f) => {}
            f => {
                return Err(Status::invalid_argument(format!(
                    "mount flag {f:?} is not supported by rwxfs (ro, rw, nosuid, nodev, \
                     noexec, suid, dev, exec; noatime, nodiratime, relatime, lazytime are \
                     what rwxfs does already)"
                )))
            }
        }
    }
    if rw && (ro || forced) {
        return Err(Status::invalid_argument(
            "mount flag rw on a volume published read-only",
        ));
    }
    Ok(Asked {
        read_only: ro || forced,
        flags,
    })
}

impl Asked {
    /// The `rwxfs mount` arguments for this mount.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.read_only {
            args.push("--read-only".to_string());
        }
        let o = self.flags.to_options();
        if !o.is_empty() {
            args.extend(["-o".to_string(), o]);
        }
        args
    }

    /// Why the mount `e` is not the mount of volume `id` asked for; None if it is.
    pub(crate) fn differs(&self, e: &Entry, id: &str) -> Option<String> {
        // Mounted by root, the type is plain `fuse` (the subtype goes unrecorded).
        if !matches!(e.fstype.as_str(), "fuse" | "fuse.rwxfs") || e.source != id {
            return Some(format!("{} ({}) is mounted there", e.source, e.fstype));
        }
        if e.has("ro") != self.read_only {
            let was = if e.has("ro") {
                "read-only"
            } else {
                "read-write"
            };
            return Some(format!("{id} is mounted there {was}"));
        }
        let now = [e.has("nosuid"), e.has("nodev"), e.has("noexec")];
        let f = self.flags;
        if now != [f.nosuid, f.nodev, f.noexec] {
            let opts = e.options.join(",");
            return Some(format!("{id} is mounted there with other flags ({opts})"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::volume_capability::{AccessMode, MountVolume};

    fn cap(mode: Mode, fs_type: &str, flags: &[&str]) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: mode as i32 }),
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: fs_type.into(),
                mount_flags: flags.iter().map(|f| f.to_string()).collect(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn flags_types_and_read_only() {
        let rwx = Mode::MultiNodeMultiWriter;
        let a = asked(
            &cap(rwx, "rwxfs", &["nosuid,nodev", "noatime", "ro"]),
            false,
        )
        .unwrap();
        assert!(a.read_only && a.flags.nosuid && a.flags.nodev && !a.flags.noexec);
        assert_eq!(a.args(), ["--read-only", "-o", "nosuid,nodev"]);
        let reader = asked(&cap(Mode::MultiNodeReaderOnly, "", &[]), false).unwrap();
        assert!(reader.read_only);
        assert!(asked(&cap(rwx, "", &[]), true).unwrap().read_only);
        assert_eq!(
            asked(&cap(rwx, "", &["rw"]), false).unwrap().args(),
            [""; 0]
        );
        for bad in [&["rw"][..], &["ro", "rw"]] {
            let e = asked(&cap(rwx, "", bad), bad.len() == 1).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
        let e = check(&cap(rwx, "", &["sync"])).unwrap_err();
        assert!(e.message().contains("\"sync\""), "{e}");
        let e = check(&cap(rwx, "xfs", &[])).unwrap_err();
        assert!(e.message().contains("xfs"), "{e}");
    }

    #[test]
    fn a_mount_is_the_one_asked_for_or_says_how_not() {
        let entry = |source: &str, opts: &str| Entry {
            source: source.into(),
            fstype: "fuse.rwxfs".into(),
            options: opts.split(',').map(str::to_string).collect(),
        };
        let a = asked(&cap(Mode::MultiNodeMultiWriter, "", &["nodev"]), false).unwrap();
        assert_eq!(
            a.differs(&entry("h:1/v", "rw,nodev,relatime"), "h:1/v"),
            None
        );
        assert!(a.differs(&entry("h:1/w", "rw,nodev"), "h:1/v").is_some());
        assert!(a.differs(&entry("h:1/v", "ro,nodev"), "h:1/v").is_some());
        assert!(a
            .differs(&entry("h:1/v", "rw,nodev,nosuid"), "h:1/v")
            .is_some());
    }
}
