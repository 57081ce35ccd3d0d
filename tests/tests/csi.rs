//! The CSI driver driven over its socket by a real gRPC client playing the external
//! provisioner, resizer and kubelet: two "nodes" (driver processes, each in a mount
//! namespace of its own) publishing volumes of one rwxfs server and writing them; access
//! modes refused by the server on the second node or the second pod; quota and expansion;
//! unpublish and delete twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rwxfs_csi::spec;
use rwxfs_csi::spec::volume_capability::access_mode::Mode;
use rwxfs_tests::{assert_fsck_clean, bin, harness};

mod csi_kit;
use csi_kit::{cap, runtime, served, Driver, Kube, MIB};

#[test]
fn volumes_are_made_published_on_two_nodes_refused_by_mode_grown_and_deleted() {
    let mut h = harness();
    let token = h.path("mount.token");
    std::fs::write(&token, "mounters\n").unwrap();
    let token_arg = token.to_string_lossy().into_owned();
    let s = served(&mut h, "128M", &["--token-file", &token_arg]);
    // Tokens reach the driver as secrets; the files it was started with are not used.
    let mut n1 = Driver::start(&s.dir, "n1", &s.none, &s.none);
    let mut n2 = Driver::start(&s.dir, "n2", &s.none, &s.none);
    runtime().block_on(async {
        let mut k = Kube::of(&[&n1, &n2], &s.server, "mounters").await;
        let rwx = Mode::MultiNodeMultiWriter;
        let v = k.create("pvc-shared", 8 * MIB, rwx).await.unwrap();
        assert_eq!(v.capacity_bytes, 8 * MIB);
        assert_eq!(
            k.create("pvc-shared", 8 * MIB, rwx).await.unwrap(),
            v,
            "asked again"
        );
        let e = k
            .create("pvc-shared", 8 * MIB, Mode::SingleNodeWriter)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
        let id = v.volume_id.clone();
        let (t1, t2) = (s.dir.join("pod-a"), s.dir.join("pod-b"));
        n1.targets.push(t1.clone());
        n2.targets.push(t2.clone());
        k.publish(0, &id, &t1, rwx).await.unwrap();
        k.publish(0, &id, &t1, rwx).await.unwrap();
        k.publish(1, &id, &t2, rwx).await.unwrap();
        assert!(n1.sh(&format!("echo from-n1 > {}/a", t1.display())).0);
        assert!(n2.sh(&format!("echo from-n2 > {}/b", t2.display())).0);
        assert_eq!(n1.sh(&format!("cat {}/b", t1.display())).1, "from-n2\n");
        assert_eq!(n2.sh(&format!("cat {}/a", t2.display())).1, "from-n1\n");
        assert_eq!(k.total(0, &id, &t1).await, 8 * MIB);
        // Past the quota: EDQUOT, then room once the volume is expanded.
        let fill = format!(
            "dd if=/dev/zero of={}/big bs=1M count=12 conv=fsync",
            t1.display()
        );
        let (ok, out) = n1.sh(&fill);
        assert!(!ok && out.contains("Disk quota exceeded"), "{out}");
        let grow = spec::ControllerExpandVolumeRequest {
            volume_id: id.clone(),
            capacity_range: Some(spec::CapacityRange {
                required_bytes: 32 * MIB,
                limit_bytes: 0,
            }),
            secrets: HashMap::from([("adminToken".into(), k.admin.clone())]),
            ..Default::default()
        };
        let grown = k
            .controller
            .controller_expand_volume(grow)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(grown.capacity_bytes, 32 * MIB);
        assert_eq!(k.total(1, &id, &t2).await, 32 * MIB);
        let (ok, out) = n1.sh(&fill);
        assert!(ok, "{out}");
        // ReadWriteOnce: a second node is refused, naming the holder.
        let rwo = k
            .create("pvc-once", 4 * MIB, Mode::SingleNodeWriter)
            .await
            .unwrap();
        let (o1, o2) = (s.dir.join("once-a"), s.dir.join("once-b"));
        n1.targets.push(o1.clone());
        n2.targets.push(o2.clone());
        k.publish(0, &rwo.volume_id, &o1, Mode::SingleNodeWriter)
            .await
            .unwrap();
        let e = k
            .publish(1, &rwo.volume_id, &o2, Mode::SingleNodeWriter)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
        assert!(e.message().contains("node n1"), "{e}");
        // ReadWriteOncePod: a second pod, even on the same node, is refused.
        let rwop = k
            .create("pvc-pod", 4 * MIB, Mode::SingleNodeSingleWriter)
            .await
            .unwrap();
        let (p1, p2) = (s.dir.join("pod-1"), s.dir.join("pod-2"));
        n1.targets.extend([p1.clone(), p2.clone()]);
        k.publish(0, &rwop.volume_id, &p1, Mode::SingleNodeSingleWriter)
            .await
            .unwrap();
        let e = k
            .publish(0, &rwop.volume_id, &p2, Mode::SingleNodeSingleWriter)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
        assert!(e.message().contains("ReadWriteOncePod"), "{e}");
        // Unpublished twice, deleted twice.
        for (node, vol, t) in [
            (0, &id, &t1),
            (1, &id, &t2),
            (0, &rwo.volume_id, &o1),
            (0, &rwop.volume_id, &p1),
        ] {
            k.unpublish(node, vol, t).await;
            k.unpublish(node, vol, t).await;
        }
        assert!(
            !n1.sh(&format!("test -e {}", t1.display())).0,
            "target left behind"
        );
        k.publish(1, &rwo.volume_id, &o2, Mode::SingleNodeWriter)
            .await
            .unwrap();
        k.unpublish(1, &rwo.volume_id, &o2).await;
        for v in [&id, &rwo.volume_id, &rwop.volume_id] {
            k.delete(v).await;
            k.delete(v).await;
        }
    });
    drop(n1);
    drop(n2);
    let out = Command::new(bin())
        .args([
            "export",
            "list",
            "--json",
            "--server",
            &s.server,
            "--admin-token-file",
        ])
        .arg(&s.admin)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    h.stop_server().unwrap();
    assert_fsck_clean(&s.img);
}

/// The process serving the FUSE mount at `target`: the `rwxfs mount` daemon.
fn mount_daemon(target: &Path) -> Option<u32> {
    let want = target.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is = args.iter().any(|a| a == "mount") && args.contains(&want);
        is.then_some(pid)
    })
}

/// A mount daemon left behind by a failed test: unmounted in its namespace, then killed.
struct Daemon(u32, PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.0.to_string();
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("nsenter")
                .args(["-t", &pid, "-m", "umount", "-l"])
                .arg(&self.1)
                .status();
            let _ = Command::new("kill").arg(&pid).status();
        }
    }
}

#[test]
fn a_mount_outlives_the_node_plugin_and_a_new_plugin_unpublishes_it() {
    let mut h = harness();
    let s = served(&mut h, "64M", &[]);
    let n1 = Driver::start(&s.dir, "n1", &s.admin, &s.none);
    let target = s.dir.join("pod");
    let rt = runtime();
    let id = rt.block_on(async {
        let mut k = Kube::of(&[&n1], &s.server, "").await;
        let v = k
            .create("pvc-kept", 4 * MIB, Mode::MultiNodeMultiWriter)
            .await
            .unwrap();
        let r = spec::NodePublishVolumeRequest {
            volume_id: v.volume_id.clone(),
            target_path: target.to_string_lossy().into_owned(),
            volume_capability: Some(cap(Mode::MultiNodeMultiWriter)),
            ..Default::default()
        };
        k.nodes[0].node_publish_volume(r).await.unwrap();
        v.volume_id
    });
    // Not among n1's targets: dropping n1 must not unmount it (the daemon's guard does, if
    // the test fails).
    let daemon = Daemon(
        mount_daemon(&target).expect("the mount's daemon"),
        target.clone(),
    );
    assert!(n1.sh(&format!("echo before > {}/f", target.display())).0);
    // The plugin dies; its mount does not.
    drop(n1);
    let pid = daemon.0.to_string();
    let in_ns = |script: &str| {
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "sh", "-c", script])
            .output()
            .unwrap()
    };
    let out = in_ns(&format!(
        "cat {}/f && echo after >> {}/f",
        target.display(),
        target.display()
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    // A new plugin in the same namespace unpublishes it.
    let prefix = ["nsenter", "-t", &pid, "-m"];
    let n2 = Driver::start_in(
        &prefix,
        &s.dir.join("n1-again.sock"),
        "n1",
        &s.admin,
        &s.none,
        &[],
    );
    rt.block_on(async {
        let mut node = spec::node_client::NodeClient::new(n2.channel().await);
        let r = spec::NodeUnpublishVolumeRequest {
            volume_id: id.clone(),
            target_path: target.to_string_lossy().into_owned(),
        };
        node.node_unpublish_volume(r).await.unwrap();
    });
    let gone = std::time::Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            gone.elapsed().as_secs() < 60,
            "the mount daemon outlived its unmount"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(n2);
    h.stop_server().unwrap();
    assert_fsck_clean(&s.img);
}
