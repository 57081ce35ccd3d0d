//! NodePublishVolume as the CSI spec asks beyond the first mount: a republish that matches
//! the mount answers OK, one that does not (read-only or not, other mount flags, another
//! volume at the target) ALREADY_EXISTS and leaves the mount alone; a capability's mount
//! flags reach the mount, and a flag or file system type the driver does not know is
//! INVALID_ARGUMENT with nothing mounted.

use std::path::Path;

use rwxfs_csi::spec;
use rwxfs_csi::spec::volume_capability::access_mode::Mode;
use rwxfs_tests::{assert_fsck_clean, harness};
use tonic::Code;

mod csi_kit;
use csi_kit::{cap, cap_with, runtime, served, Driver, Kube, ADMIN, MIB};

const RWX: Mode = Mode::MultiNodeMultiWriter;

fn request(id: &str, target: &Path, c: spec::VolumeCapability) -> spec::NodePublishVolumeRequest {
    spec::NodePublishVolumeRequest {
        volume_id: id.into(),
        target_path: target.to_string_lossy().into_owned(),
        volume_capability: Some(c),
        ..Default::default()
    }
}

#[test]
fn a_republish_must_match_the_mount_and_mount_flags_reach_it() {
    let mut h = harness();
    let s = served(&mut h, "64M", &[]);
    let mut n1 = Driver::start(&s.dir, "n1", &s.admin, &s.none);
    let (t1, t2, t3) = (
        s.dir.join("pod-1"),
        s.dir.join("pod-2"),
        s.dir.join("pod-3"),
    );
    n1.targets.extend([t1.clone(), t2.clone(), t3.clone()]);
    runtime().block_on(async {
        let mut k = Kube::of(&[&n1], &s.server, "").await;
        let a = k.create("pvc-a", 4 * MIB, RWX).await.unwrap().volume_id;
        let b = k.create("pvc-b", 4 * MIB, RWX).await.unwrap().volume_id;
        k.publish(0, &a, &t1, RWX).await.unwrap();
        let (opts, source) = n1.mounted(&t1).expect("published");
        assert_eq!(source, a);
        assert!(opts.starts_with("rw,"), "{opts}");
        // The same again: OK. Anything else at the same target: ALREADY_EXISTS, mount kept.
        k.publish(0, &a, &t1, RWX).await.unwrap();
        let mut ro = request(&a, &t1, cap(RWX));
        ro.readonly = true;
        let incompatible = [
            ro,
            request(&a, &t1, cap_with(RWX, "", &["nosuid"])),
            request(&a, &t1, cap_with(RWX, "", &["ro"])),
            request(&b, &t1, cap(RWX)),
        ];
        for r in incompatible {
            let e = k.publish_with(0, r.clone()).await.unwrap_err();
            assert_eq!(e.code(), Code::AlreadyExists, "{r:?}: {e}");
            assert_eq!(n1.mounted(&t1).unwrap(), (opts.clone(), source.clone()));
        }
        assert!(n1.sh(&format!("echo still > {}/f", t1.display())).0);
        // Flags reach the mount; those rwxfs already behaves by (noatime) are accepted.
        let flags = ["nosuid,nodev", "noexec", "noatime", "ro"];
        let r = request(&a, &t2, cap_with(RWX, "rwxfs", &flags));
        k.publish_with(0, r.clone()).await.unwrap();
        let (opts2, _) = n1.mounted(&t2).expect("published");
        let o: Vec<&str> = opts2.split(',').collect();
        for want in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(o.contains(&want), "{want} not in {opts2}");
        }
        let (ok, out) = n1.sh(&format!("echo no > {}/g", t2.display()));
        assert!(!ok && out.contains("Read-only file system"), "{out}");
        k.publish_with(0, r).await.unwrap();
        let r = request(&a, &t2, cap_with(RWX, "rwxfs", &["nosuid", "nodev", "ro"]));
        let e = k.publish_with(0, r).await.unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists, "{e}");
        // Unknown flags, a read-write flag on a read-only publish, another file system type:
        // refused, nothing mounted, nothing made.
        let mut rw = request(&a, &t3, cap_with(RWX, "", &["rw"]));
        rw.readonly = true;
        let bad = [
            request(&a, &t3, cap_with(RWX, "", &["nosuid", "bogus"])),
            request(&a, &t3, cap_with(RWX, "", &["strictatime"])),
            request(&a, &t3, cap_with(RWX, "ext4", &[])),
            rw,
        ];
        for r in bad {
            let e = k.publish_with(0, r.clone()).await.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{r:?}: {e}");
            assert!(n1.mounted(&t3).is_none(), "{r:?}");
        }
        let mut c = spec::CreateVolumeRequest {
            name: "pvc-ext4".into(),
            volume_capabilities: vec![cap_with(RWX, "ext4", &[])],
            parameters: [("server".into(), s.server.clone())].into(),
            secrets: [("adminToken".into(), ADMIN.into())].into(),
            ..Default::default()
        };
        let e = k.controller.create_volume(c.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
        assert!(e.message().contains("ext4"), "{e}");
        c.volume_capabilities = vec![cap_with(RWX, "", &["bogus"])];
        let e = k.controller.create_volume(c).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
        assert!(e.message().contains("bogus"), "{e}");
        for t in [&t1, &t2, &t3] {
            k.unpublish(0, &a, t).await;
        }
        k.delete(&a).await;
        k.delete(&b).await;
    });
    drop(n1);
    h.stop_server().unwrap();
    assert_fsck_clean(&s.img);
}
