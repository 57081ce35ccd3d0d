//! A real container runtime on rwxfs volumes: podman (runc) containers from a root file system
//! assembled here, on a volume mounted on their host as a kubelet mounts one — two containers
//! writing one ReadWriteMany export at once through one host mount, each seeing the other's
//! writes; a container whose volume the host mounts after it started, reaching it through
//! HostToContainer (rslave) mount propagation, and one with private propagation that does
//! not; the CSI node plugin in a privileged container, its kubelet directory shared
//! Bidirectionally as the DaemonSet has it, publishing a volume the host sees and a "pod"
//! container uses. Each is checked from a fresh mount of the export afterwards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rwxfs_csi::spec;
use rwxfs_csi::spec::volume_capability::access_mode::Mode;
use rwxfs_csi::spec::volume_capability::{AccessMode, AccessType, MountVolume};
use tonic::transport::{Channel, Endpoint, Uri};

use rwxfs_tests::podman::Podman;
use rwxfs_tests::{assert_fsck_clean, bin, harness, Harness};

/// Lines each container writes.
const LINES: usize = 200;
/// How long a container may take at most.
const LIMIT: Duration = Duration::from_secs(180);

/// A server with an RWX export `vol`: the harness, the image, the export's source and the
/// mount token file.
fn served() -> (Harness, std::path::PathBuf, String, String) {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let admin = h.path("admin.token");
    std::fs::write(&admin, "the-administrators-secret\n").unwrap();
    let token = h.path("mount.token");
    std::fs::write(&token, "the-mounts-secret\n").unwrap();
    let (admin, token) = (
        admin.to_string_lossy().into_owned(),
        token.to_string_lossy().into_owned(),
    );
    let addr = h
        .start_server(
            &img,
            &["--admin-token-file", &admin, "--token-file", &token],
        )
        .unwrap();
    let out = Command::new(bin())
        .args([
            "export",
            "create",
            "vol",
            "--size",
            "64M",
            "--access-mode",
            "rwx",
        ])
        .args(["--server", &addr, "--admin-token-file", &admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (h, img, format!("{addr}/vol"), token)
}

/// A busybox script waiting (at most a minute) for `path` to exist; exits `code` if it never
/// does.
fn wait_for(path: &str, code: i32) -> String {
    format!(
        "i=0; while [ ! -e {path} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
         [ -e {path} ] || {{ echo 'never saw {path}'; exit {code}; }}; "
    )
}

/// Container `me`'s script: once `/data/go` exists, append LINES lines to its own file and to
/// the shared one, then wait for `peer` to finish and check all its lines are there.
fn writer(me: &str, peer: &str) -> String {
    format!(
        "{go}n=1; while [ $n -le {LINES} ]; do echo \"{me} $n\" >>/data/{me}.log; \
         echo \"{me} $n\" >>/data/both.log; n=$((n+1)); done; echo done >/data/{me}.done; \
         {peer_done}\
         [ \"$(wc -l </data/{peer}.log)\" -eq {LINES} ] || {{ echo 'short {peer}.log'; exit 4; }}; \
         [ \"$(tail -n 1 /data/{peer}.log)\" = '{peer} {LINES}' ] || exit 5; \
         [ \"$(grep -c '^{peer} ' /data/both.log)\" -eq {LINES} ] || exit 6; \
         echo \"{me} saw {peer}\" >/data/{me}.saw",
        go = wait_for("/data/go", 2),
        peer_done = wait_for(&format!("/data/{peer}.done"), 3),
    )
}

fn assert_exited_ok(p: &Podman, name: &str, want: i32) {
    let code = p.wait(name, LIMIT).unwrap();
    assert_eq!(code, want, "container {name}: {}", p.logs(name));
}

#[test]
fn two_containers_write_one_rwx_volume_at_once_and_see_each_others_writes() {
    let (mut h, img, source, token) = served();
    let mut p = Podman::new().unwrap();
    let mp = p.dir.path().join("volume");
    std::fs::create_dir(&mp).unwrap();
    p.mount(
        &bin(),
        &source,
        &mp,
        &["--node-id", "node-a", "--token-file", &token],
    )
    .unwrap();
    let bind = format!("{}:/data", mp.display());
    p.start("writer-a", std::slice::from_ref(&bind), &writer("a", "b"))
        .unwrap();
    p.start("writer-b", &[bind], &writer("b", "a")).unwrap();
    // Both are running: let them go at once.
    p.host_sh(&format!("echo go >'{}/go'", mp.display()))
        .unwrap();
    assert_exited_ok(&p, "writer-a", 0);
    assert_exited_ok(&p, "writer-b", 0);
    p.finish().unwrap();

    let fresh = h
        .mount_remote_with(&source, &["--node-id", "node-b", "--token-file", &token])
        .unwrap();
    for (me, peer) in [("a", "b"), ("b", "a")] {
        let log = std::fs::read_to_string(fresh.join(format!("{me}.log"))).unwrap();
        let want: String = (1..=LINES).map(|n| format!("{me} {n}\n")).collect();
        assert_eq!(log, want, "{me}.log");
        let saw = std::fs::read_to_string(fresh.join(format!("{me}.saw"))).unwrap();
        assert_eq!(saw, format!("{me} saw {peer}\n"));
    }
    let both = std::fs::read_to_string(fresh.join("both.log")).unwrap();
    for me in ["a", "b"] {
        let mine: Vec<&str> = both.lines().filter(|l| l.starts_with(me)).collect();
        let want: Vec<String> = (1..=LINES).map(|n| format!("{me} {n}")).collect();
        assert_eq!(mine, want, "{me}'s lines in both.log, in order");
    }
    assert_eq!(both.lines().count(), 2 * LINES);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// A container's script: say it started, wait for the host to have mounted the volume, then
/// copy `hello` from it to `reply-NAME` (exit 0), or exit 3 if the volume is not there.
fn late_reader(name: &str) -> String {
    format!(
        "echo up >/vol/started-{name}; {mounted}\
         if [ -f /vol/mnt/hello ]; then cat /vol/mnt/hello >/vol/mnt/reply-{name}; exit 0; fi; \
         echo 'no volume at /vol/mnt:'; ls -la /vol/mnt; exit 3",
        mounted = wait_for("/vol/mounted", 2),
    )
}

/// Wait (at most a minute) for `path` to exist.
fn await_file(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until something accepts connections on the unix socket at `path` (the file appears at
/// bind, a moment before the listen).
fn await_listening(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Err(e) = std::os::unix::net::UnixStream::connect(path) {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {}: {e}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_volume_mounted_after_the_container_started_reaches_it_by_rslave_propagation() {
    let (mut h, img, source, token) = served();
    let seed = h
        .mount_remote_with(&source, &["--node-id", "seed", "--token-file", &token])
        .unwrap();
    std::fs::write(seed.join("hello"), "from the server\n").unwrap();
    h.unmount(&seed).unwrap();

    let mut p = Podman::new().unwrap();
    let host = p.dir.path().join("pods");
    std::fs::create_dir_all(host.join("mnt")).unwrap();
    // The kubelet's pods directory: a shared mount, so what is mounted under it later
    // propagates to the containers' slave copies.
    let d = host.display();
    p.host_sh(&format!(
        "mount --bind '{d}' '{d}' && mount --make-shared '{d}'"
    ))
    .unwrap();
    p.start(
        "slave",
        &[format!("{d}:/vol:rslave")],
        &late_reader("slave"),
    )
    .unwrap();
    p.start(
        "private",
        &[format!("{d}:/vol:private")],
        &late_reader("private"),
    )
    .unwrap();
    await_file(&host.join("started-slave"));
    await_file(&host.join("started-private"));

    p.mount(
        &bin(),
        &source,
        &host.join("mnt"),
        &["--node-id", "node-a", "--token-file", &token],
    )
    .unwrap();
    // Beside the mount point, in the plain directory both containers share.
    std::fs::write(host.join("mounted"), "yes\n").unwrap();
    assert_exited_ok(&p, "slave", 0);
    // The control: without propagation the container keeps the empty directory.
    assert_exited_ok(&p, "private", 3);
    p.finish().unwrap();

    let fresh = h
        .mount_remote_with(&source, &["--node-id", "node-b", "--token-file", &token])
        .unwrap();
    let reply = std::fs::read_to_string(fresh.join("reply-slave")).unwrap();
    assert_eq!(reply, "from the server\n");
    assert!(!fresh.join("reply-private").exists());
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// A CSI node client on the driver's unix socket.
async fn node_client(socket: PathBuf) -> spec::node_client::NodeClient<Channel> {
    let channel = Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            tokio::net::UnixStream::connect(socket.clone())
        }))
        .await
        .unwrap();
    spec::node_client::NodeClient::new(channel)
}

/// Whether the host has a FUSE mount at `target`.
fn host_has_mount(p: &Podman, target: &Path) -> bool {
    let script = format!(
        "awk '$5 == \"{}\"' /proc/self/mountinfo | grep -q fuse",
        target.display()
    );
    p.host_sh(&script).is_ok()
}

#[test]
fn a_node_plugin_in_a_privileged_container_mounts_for_the_host_and_a_pod_uses_it() {
    let (mut h, img, source, token) = served();
    let seed = h
        .mount_remote_with(&source, &["--node-id", "seed", "--token-file", &token])
        .unwrap();
    std::fs::write(seed.join("hello"), "from the server\n").unwrap();
    h.unmount(&seed).unwrap();

    let mut p = Podman::new().unwrap();
    let kubelet = p.dir.path().join("kubelet");
    let socket = kubelet.join("plugins/rwxfs/csi.sock");
    let pv = kubelet.join("pods/uid-1/volumes/kubernetes.io~csi/pv-1");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&pv).unwrap();
    let target = pv.join("mount");
    // The host's /var/lib/kubelet: a shared mount, as on a node.
    let k = kubelet.display();
    p.host_sh(&format!(
        "mount --bind '{k}' '{k}' && mount --make-rshared '{k}'"
    ))
    .unwrap();
    // node.yaml's container: privileged, host network, the kubelet directory Bidirectional
    // (rshared); here also the host's /usr for the binary's libraries, and the binary.
    let options: Vec<String> = vec![
        "--privileged".into(),
        "--network".into(),
        "host".into(),
        "--volume".into(),
        format!("{k}:{k}:rshared"),
        "--volume".into(),
        "/usr:/usr:ro".into(),
        "--volume".into(),
        format!("{}:/rwxfs:ro", bin().display()),
    ];
    let argv: Vec<String> = [
        "/rwxfs",
        "csi",
        "--node",
        "--node-id",
        "node-a",
        "--endpoint",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("unix://{}", socket.display())])
    .collect();
    p.run("node-plugin", &options, &argv).unwrap();
    await_listening(&socket);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut node = rt.block_on(node_client(socket.clone()));
    let publish = spec::NodePublishVolumeRequest {
        volume_id: source.clone(),
        target_path: target.to_string_lossy().into_owned(),
        volume_capability: Some(spec::VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::MultiNodeMultiWriter as i32,
            }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }),
        secrets: HashMap::from([("token".into(), "the-mounts-secret".into())]),
        ..Default::default()
    };
    let published = rt.block_on(node.node_publish_volume(publish));
    assert!(
        published.is_ok(),
        "{published:?}\n{}",
        p.logs("node-plugin")
    );
    // Made inside the plugin's container, the mount reached the host.
    assert!(
        host_has_mount(&p, &target),
        "the host has no mount at {}",
        target.display()
    );

    // A pod: its container given the volume kubelet sees at the target path.
    let pod = "cat /data/hello >/data/pod.txt && echo 'written by the pod' >>/data/pod.txt";
    p.start("pod", &[format!("{}:/data", target.display())], pod)
        .unwrap();
    assert_exited_ok(&p, "pod", 0);

    let unpublish = spec::NodeUnpublishVolumeRequest {
        volume_id: source.clone(),
        target_path: target.to_string_lossy().into_owned(),
    };
    rt.block_on(node.node_unpublish_volume(unpublish)).unwrap();
    assert!(!host_has_mount(&p, &target), "still mounted on the host");
    assert!(!target.exists());
    p.finish().unwrap();

    let fresh = h
        .mount_remote_with(&source, &["--node-id", "node-b", "--token-file", &token])
        .unwrap();
    let text = std::fs::read_to_string(fresh.join("pod.txt")).unwrap();
    assert_eq!(text, "from the server\nwritten by the pod\n");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
