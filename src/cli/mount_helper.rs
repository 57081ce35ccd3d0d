//! `mount.rwxfs`: the helper mount(8) runs for `mount -t rwxfs SOURCE DIR` and for /etc/fstab
//! lines of type rwxfs. It turns mount(8)'s calling convention into `rwxfs mount` arguments.
//!
//! mount(8) calls `mount.rwxfs SOURCE DIR [-sfnv] [-o OPTIONS] [-t TYPE]`. SOURCE is the
//! server's HOST:PORT (or an active server's and its standbys', comma-separated:
//! `h1:7411,h2:7411`), or with the `raw` option an image file. Options: `ro`/`rw`, `raw`,
//! `direct` (file data read and written on the shared image itself, metadata through the
//! server), `direct_image=PATH` (a direct mount whose image this machine sees at PATH rather
//! than where the server says it is), `ceph_conf=FILE` and `ceph_id=ID` (how a direct mount of
//! a volume in RADOS reaches the cluster), `node_id=ID`, and the kernel flags `nosuid`, `nodev`, `noexec` (with `suid`, `dev`, `exec`),
//! which go to the mount as given; the generic ones that mount(8) and fstab use (defaults,
//! _netdev, noauto, nofail, x-*, ...) are accepted and have nothing to do here.

use client_fuse::MountFlags;

/// The name this binary answers to as the helper.
pub const NAME: &str = "mount.rwxfs";

#[derive(Debug, PartialEq)]
pub enum Helper {
    /// Run `rwxfs` with these arguments.
    Mount(Vec<String>),
    /// `-f` (fake): everything but the mount itself, so nothing.
    Nothing,
}

/// Options that fstab and mount(8) pass along which change nothing for rwxfs.
const GENERIC: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "async",
    "sync",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "diratime",
    "nodiratime",
    "loud",
    "silent",
    "comment",
];

pub fn translate(argv: &[String]) -> Result<Helper, String> {
    let mut positional = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut fake = false;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => options.push(it.next().ok_or("-o needs a value")?.clone()),
            "-t" => {
                let t = it.next().ok_or("-t needs a value")?;
                if t != "rwxfs" && t != "fuse.rwxfs" {
                    return Err(format!("type {t} is not rwxfs"));
                }
            }
            "-N" => return Err("-N (another namespace) is not supported".into()),
            "-f" => fake = true,
            "-s" | "-n" | "-v" | "-i" => {}
            s if s.starts_with("-o") => options.push(s[2..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown flag {s}"));
            }
            _ => positional.push(a.clone()),
        }
    }
    let [source, dir] = positional.as_slice() else {
        return Err(format!(
            "usage: {NAME} SOURCE DIR [-o OPTIONS] (got {} arguments)",
            positional.len()
        ));
    };
    let mut read_only = false;
    let mut raw = false;
    let mut direct = false;
    let mut direct_image = None;
    let mut ceph = Vec::new();
    let mut node_id = None;
    let mut flags = MountFlags::default();
    for o in options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        match o.split_once('=') {
            Some(("node_id" | "node-id", v)) if !v.is_empty() => node_id = Some(v.to_string()),
            Some(("direct_image" | "direct-image", "")) => {
                return Err("direct_image needs the image's path".into())
            }
            Some(("direct_image" | "direct-image", v)) => {
                direct = true;
                direct_image = Some(v.to_string());
            }
            Some((k @ ("ceph_conf" | "ceph-conf" | "ceph_id" | "ceph-id"), v)) if !v.is_empty() => {
                ceph.push(format!("--{}", k.replace('_', "-")));
                ceph.push(v.to_string());
            }
            Some((k, _)) if k.starts_with("x-") || k == "comment" => {}
            Some((k, _)) => return Err(format!("unknown option {k}")),
            None => match o {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "raw" => raw = true,
                "direct" => direct = true,
                o if flags.apply(o) => {}
                o if o.starts_with("x-") || GENERIC.contains(&o) => {}
                o => return Err(format!("unknown option {o}")),
            },
        }
    }
    if raw && direct {
        return Err(
            "raw and direct cannot be combined: a direct mount goes through a server (SOURCE is \
             its HOST:PORT) and only its file data goes to the image"
                .into(),
        );
    }
    if fake {
        return Ok(Helper::Nothing);
    }
    let mut args = vec!["mount".to_string()];
    if raw {
        args.push("--raw-image".into());
        args.push(source.clone());
    }
    if direct {
        args.push("--direct".into());
    }
    if let Some(p) = direct_image {
        args.push("--direct-image".into());
        args.push(p);
    }
    args.extend(ceph);
    if read_only {
        args.push("--read-only".into());
    }
    let flags = flags.to_options();
    if !flags.is_empty() {
        args.push("-o".into());
        args.push(flags);
    }
    if let Some(n) = node_id {
        args.push("--node-id".into());
        args.push(n);
    }
    args.push("--".into());
    if !raw {
        args.push(source.clone());
    }
    args.push(dir.clone());
    Ok(Helper::Mount(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Result<Helper, String> {
        translate(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn mount(args: &[&str]) -> Helper {
        Helper::Mount(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn fstab_line_of_a_server() {
        assert_eq!(
            t(&[
                "10.0.0.1:7000",
                "/mnt/v",
                "-o",
                "rw,_netdev,noatime,node_id=n1"
            ]),
            Ok(mount(&[
                "mount",
                "--node-id",
                "n1",
                "--",
                "10.0.0.1:7000",
                "/mnt/v"
            ]))
        );
    }

    #[test]
    fn read_only_raw_image() {
        assert_eq!(
            t(&["/img", "/mnt/v", "-n", "-oro,raw", "-t", "rwxfs"]),
            Ok(mount(&[
                "mount",
                "--raw-image",
                "/img",
                "--read-only",
                "--",
                "/mnt/v"
            ]))
        );
    }

    #[test]
    fn kernel_flags_go_to_the_mount_the_last_of_opposites_winning() {
        assert_eq!(
            t(&[
                "h:1",
                "/m",
                "-o",
                "defaults,nosuid,exec,noexec,nodev",
                "-o",
                "suid,ro"
            ]),
            Ok(mount(&[
                "mount",
                "--read-only",
                "-o",
                "nodev,noexec",
                "--",
                "h:1",
                "/m"
            ]))
        );
    }

    #[test]
    fn an_active_server_and_its_standby_go_to_the_mount_as_one_source() {
        assert_eq!(
            t(&["h1:7411,h2:7411", "/m", "-o", "_netdev"]),
            Ok(mount(&["mount", "--", "h1:7411,h2:7411", "/m"]))
        );
    }

    #[test]
    fn direct_and_the_image_as_this_machine_sees_it() {
        assert_eq!(
            t(&["h:1", "/m", "-o", "_netdev,direct"]),
            Ok(mount(&["mount", "--direct", "--", "h:1", "/m"]))
        );
        // direct_image alone is a direct mount too: the image is only for one.
        assert_eq!(
            t(&["h:1", "/m", "-o", "direct_image=/srv/vol.img,ro"]),
            Ok(mount(&[
                "mount",
                "--direct",
                "--direct-image",
                "/srv/vol.img",
                "--read-only",
                "--",
                "h:1",
                "/m"
            ]))
        );
    }

    #[test]
    fn a_direct_mount_of_a_rados_volume_names_its_ceph_configuration_and_id() {
        assert_eq!(
            t(&[
                "h:1",
                "/m",
                "-o",
                "direct,ceph_conf=/etc/ceph/c.conf,ceph_id=rwxfs"
            ]),
            Ok(mount(&[
                "mount",
                "--direct",
                "--ceph-conf",
                "/etc/ceph/c.conf",
                "--ceph-id",
                "rwxfs",
                "--",
                "h:1",
                "/m"
            ]))
        );
        assert_eq!(
            t(&["h:1", "/m", "-o", "direct,ceph_id="]),
            Err("unknown option ceph_id".into())
        );
    }

    #[test]
    fn direct_refuses_what_it_cannot_be() {
        assert!(t(&["/img", "/m", "-o", "raw,direct"])
            .unwrap_err()
            .contains("raw and direct"));
        assert!(t(&["/img", "/m", "-o", "direct_image=/x,raw"])
            .unwrap_err()
            .contains("raw and direct"));
        assert_eq!(
            t(&["h:1", "/m", "-o", "direct_image="]),
            Err("direct_image needs the image's path".into())
        );
    }

    #[test]
    fn fake_mounts_nothing() {
        assert_eq!(t(&["h:1", "/m", "-f"]), Ok(Helper::Nothing));
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        assert_eq!(
            t(&["h:1", "/m", "-o", "bogus"]),
            Err("unknown option bogus".into())
        );
        assert_eq!(
            t(&["h:1", "/m", "-t", "ext4"]),
            Err("type ext4 is not rwxfs".into())
        );
        assert!(t(&["h:1"]).unwrap_err().starts_with("usage:"));
        assert_eq!(t(&["h:1", "/m", "-o"]), Err("-o needs a value".into()));
    }
}
