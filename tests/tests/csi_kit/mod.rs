//! What the CSI tests share: a server with an administrators' token, driver processes
//! (each a "node" in a mount namespace of its own) and a gRPC client playing the external
//! provisioner, resizer and kubelet.
// Each test file uses some of these.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rwxfs_csi::spec;
use rwxfs_csi::spec::volume_capability::access_mode::Mode;
use rwxfs_csi::spec::volume_capability::{AccessMode, AccessType, MountVolume};
use rwxfs_tests::{bin, Harness};
use tonic::transport::{Channel, Endpoint, Uri};

pub const MIB: i64 = 1 << 20;

/// The administrators' token of every server `served` starts.
pub const ADMIN: &str = "administrators";

/// A server for the CSI tests, and where their drivers' sockets and pods' targets go.
pub struct Served {
    /// The image it serves.
    pub img: PathBuf,
    /// The server's address.
    pub server: String,
    /// The file holding its administrators' token (`ADMIN`).
    pub admin: PathBuf,
    /// The directory of the drivers' sockets and the pods' targets.
    pub dir: PathBuf,
    /// A token file that does not exist: a driver given it starts with no token.
    pub none: PathBuf,
}

/// A new image of `size` served with the administrators' token `ADMIN` and the server
/// options `extra`.
pub fn served(h: &mut Harness, size: &str, extra: &[&str]) -> Served {
    let img = h.mkfs("v.img", size).unwrap();
    let admin = h.path("admin.token");
    std::fs::write(&admin, format!("{ADMIN}\n")).unwrap();
    let admin_arg = admin.to_string_lossy().into_owned();
    let mut args = vec!["--admin-token-file", &admin_arg];
    args.extend_from_slice(extra);
    let server = h.start_server(&img, &args).unwrap();
    let dir = h.path("csi");
    std::fs::create_dir(&dir).unwrap();
    let none = dir.join("absent");
    Served {
        img,
        server,
        admin,
        dir,
        none,
    }
}

/// The runtime the gRPC client runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One driver process: a "node", in a mount namespace of its own.
pub struct Driver {
    pub child: Child,
    socket: PathBuf,
    /// Targets published through it, unmounted at the end even if the test fails.
    pub targets: Vec<PathBuf>,
}

impl Driver {
    pub fn start(dir: &Path, node: &str, admin: &Path, token: &Path) -> Driver {
        Driver::start_with(dir, node, admin, token, &[])
    }

    /// As `start`, with more arguments for `rwxfs csi`.
    pub fn start_with(
        dir: &Path,
        node: &str,
        admin: &Path,
        token: &Path,
        extra: &[&str],
    ) -> Driver {
        let prefix = ["unshare", "--mount", "--propagation", "private"];
        let socket = dir.join(format!("{node}.sock"));
        Driver::start_in(&prefix, &socket, node, admin, token, extra)
    }

    /// A driver started through `prefix` (`unshare ...` for a new mount namespace,
    /// `nsenter ...` for an existing one).
    pub fn start_in(
        prefix: &[&str],
        socket: &Path,
        node: &str,
        admin: &Path,
        token: &Path,
        extra: &[&str],
    ) -> Driver {
        let socket = socket.to_path_buf();
        let mut child = Command::new(prefix[0])
            .args(&prefix[1..])
            .arg(bin())
            .args(["csi", "--controller", "--node", "--node-id", node])
            .arg("--endpoint")
            .arg(format!("unix://{}", socket.display()))
            .args(file_arg("--admin-token-file", admin))
            .args(file_arg("--token-file", token))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains("rwxfs csi: serving on") {
                break;
            }
            assert!(!line.contains("rwxfs csi:"), "{line}");
        }
        std::thread::spawn(move || lines.for_each(|l| eprintln!("driver: {l:?}")));
        Driver {
            child,
            socket,
            targets: Vec::new(),
        }
    }

    /// A shell command run in this node's mount namespace: its status and output.
    pub fn sh(&self, script: &str) -> (bool, String) {
        let out = Command::new("nsenter")
            .args(["-t", &self.child.id().to_string(), "-m", "sh", "-c", script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// The per-mount options (mountinfo's sixth field) of the mount at `target` in this
    /// node's namespace, with its source: None when nothing is mounted there.
    pub fn mounted(&self, target: &Path) -> Option<(String, String)> {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.child.id())).unwrap();
        let want = target.to_string_lossy();
        info.lines().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            (f[4] == want).then(|| (f[5].to_string(), f[dash + 2].to_string()))
        })
    }

    pub async fn channel(&self) -> Channel {
        let socket = self.socket.clone();
        Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                tokio::net::UnixStream::connect(socket.clone())
            }))
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for t in &self.targets {
            let _ = self.sh(&format!("umount -l {} 2>/dev/null", t.display()));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `flag FILE`, if there is such a file.
pub fn file_arg(flag: &str, file: &Path) -> Vec<std::ffi::OsString> {
    match file.exists() {
        true => vec![flag.into(), file.into()],
        false => Vec::new(),
    }
}

pub fn cap(mode: Mode) -> spec::VolumeCapability {
    spec::VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

/// A capability of `mode` for a file system of type `fs_type` mounted with `flags`.
pub fn cap_with(mode: Mode, fs_type: &str, flags: &[&str]) -> spec::VolumeCapability {
    spec::VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs_type.into(),
            mount_flags: flags.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        })),
    }
}

pub struct Kube {
    pub controller: spec::controller_client::ControllerClient<Channel>,
    pub nodes: Vec<spec::node_client::NodeClient<Channel>>,
    pub server: String,
    pub admin: String,
    pub token: String,
}

impl Kube {
    /// The provisioner (through the first of `nodes`) and kubelets of `nodes`, for volumes
    /// of `server` administered with `ADMIN` and mounted with `token` (empty: none).
    pub async fn of(nodes: &[&Driver], server: &str, token: &str) -> Kube {
        let mut kubelets = Vec::new();
        for n in nodes {
            kubelets.push(spec::node_client::NodeClient::new(n.channel().await));
        }
        Kube {
            controller: spec::controller_client::ControllerClient::new(nodes[0].channel().await),
            nodes: kubelets,
            server: server.into(),
            admin: ADMIN.into(),
            token: token.into(),
        }
    }

    pub async fn create(
        &mut self,
        name: &str,
        bytes: i64,
        mode: Mode,
    ) -> Result<spec::Volume, tonic::Status> {
        let r = spec::CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(spec::CapacityRange {
                required_bytes: bytes,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![cap(mode)],
            parameters: HashMap::from([("server".into(), self.server.clone())]),
            secrets: HashMap::from([("adminToken".into(), self.admin.clone())]),
            ..Default::default()
        };
        let v = self.controller.create_volume(r).await?.into_inner().volume;
        Ok(v.unwrap())
    }

    pub async fn publish(
        &mut self,
        node: usize,
        id: &str,
        target: &Path,
        mode: Mode,
    ) -> Result<(), tonic::Status> {
        let r = spec::NodePublishVolumeRequest {
            volume_id: id.into(),
            target_path: target.to_string_lossy().into_owned(),
            volume_capability: Some(cap(mode)),
            ..Default::default()
        };
        self.publish_with(node, r).await
    }

    /// Publish with `r` as given, the mounts' token (if any) added to its secrets.
    pub async fn publish_with(
        &mut self,
        node: usize,
        mut r: spec::NodePublishVolumeRequest,
    ) -> Result<(), tonic::Status> {
        if !self.token.is_empty() {
            r.secrets
                .entry("token".into())
                .or_insert_with(|| self.token.clone());
        }
        self.nodes[node].node_publish_volume(r).await.map(|_| ())
    }

    pub async fn unpublish(&mut self, node: usize, id: &str, target: &Path) {
        let r = spec::NodeUnpublishVolumeRequest {
            volume_id: id.into(),
            target_path: target.to_string_lossy().into_owned(),
        };
        self.nodes[node].node_unpublish_volume(r).await.unwrap();
    }

    pub async fn total(&mut self, node: usize, id: &str, target: &Path) -> i64 {
        let r = spec::NodeGetVolumeStatsRequest {
            volume_id: id.into(),
            volume_path: target.to_string_lossy().into_owned(),
            staging_target_path: String::new(),
        };
        let s = self.nodes[node]
            .node_get_volume_stats(r)
            .await
            .unwrap()
            .into_inner();
        assert!(!s.volume_condition.unwrap().abnormal);
        s.usage[0].total
    }

    pub async fn delete(&mut self, id: &str) {
        let r = spec::DeleteVolumeRequest {
            volume_id: id.into(),
            secrets: HashMap::from([("adminToken".into(), self.admin.clone())]),
        };
        self.controller.delete_volume(r).await.unwrap();
    }
}
