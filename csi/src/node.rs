//! The node service: a volume is mounted at a pod's target path by `rwxfs mount
//! HOST:PORT/NAME`, which leaves a daemon of its own (its own process group, reparented
//! when the command returns) — a restart of the plugin leaves every mount as it was. The
//! server admits the mount or refuses it by the export's access mode; `--no-wait` makes an
//! RWOP volume in use a refusal, so kubelet retries and the pod stays Pending.

use std::path::{Path, PathBuf};
use std::process::Command;

use tonic::{Request, Response, Status};

use crate::admin::{self, MOUNT_SECRET, TLS_CONTEXT, TLS_SECRET};
use crate::asked::asked;
use crate::modes::mode_of;
use crate::mountinfo;
use crate::spec::node_service_capability::{rpc, Rpc, Type};
use crate::spec::{self, NodeServiceCapability};

/// The node service.
pub(crate) struct Node {
    node_id: String,
    token_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    rwxfs: PathBuf,
}

impl Node {
    pub(crate) fn new(opts: &crate::Options) -> Node {
        Node {
            node_id: opts.node_id.clone(),
            token_file: opts.token_file.clone(),
            tls_ca: opts.tls_ca.clone(),
            rwxfs: opts.rwxfs.clone(),
        }
    }
}

impl Node {
    /// The `--tls-ca` file a publish mounts with: the `tlsCA` secret written to a file of
    /// its own (kept while the mount starts), else the driver's `--tls-ca`. A volume made
    /// over TLS with neither is refused, naming both.
    fn tls(
        &self,
        r: &spec::NodePublishVolumeRequest,
    ) -> Result<(Option<PathBuf>, Option<SecretFile>), Status> {
        if let Some(pem) = r.secrets.get(TLS_SECRET) {
            let what = format!("secret {TLS_SECRET}");
            client_fuse::transport::client_config_pem(pem.as_bytes(), &what)
                .map_err(Status::invalid_argument)?;
            let f = SecretFile::new("ca", pem.as_bytes())?;
            return Ok((Some(f.0.clone()), Some(f)));
        }
        if let Some(f) = &self.tls_ca {
            return Ok((Some(f.clone()), None));
        }
        if r.volume_context
            .get(TLS_CONTEXT)
            .is_some_and(|v| v == "true")
        {
            return Err(Status::failed_precondition(format!(
                "volume {} is served over TLS: give the node-publish secret {TLS_SECRET} \
                 (the server's CA, PEM) or the driver's --tls-ca",
                r.volume_id
            )));
        }
        Ok((None, None))
    }
}

/// `path` is a mount point now (in this mount namespace).
fn is_mounted(path: &Path) -> bool {
    mountinfo::at(path).is_some()
}

/// A secret written where `rwxfs mount` reads it (`--token-file`, `--tls-ca`), readable by
/// root only, removed when dropped (the mount has read it by then).
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(kind: &str, token: &[u8]) -> Result<SecretFile, Status> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let n: u64 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let p = std::env::temp_dir().join(format!("rwxfs-csi-{kind}-{}-{n}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| Status::internal(format!("{}: {e}", p.display())))?;
        f.write_all(token)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(SecretFile(p))
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run `cmd` off the async threads: its stderr if it failed.
async fn run(mut cmd: Command) -> Result<(), String> {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

#[tonic::async_trait]
impl spec::node_server::Node for Node {
    async fn node_stage_volume(
        &self,
        _: Request<spec::NodeStageVolumeRequest>,
    ) -> Result<Response<spec::NodeStageVolumeResponse>, Status> {
        Err(Status::unimplemented("no staging: each publish mounts"))
    }

    async fn node_unstage_volume(
        &self,
        _: Request<spec::NodeUnstageVolumeRequest>,
    ) -> Result<Response<spec::NodeUnstageVolumeResponse>, Status> {
        Err(Status::unimplemented("no staging: each publish mounts"))
    }

    async fn node_publish_volume(
        &self,
        req: Request<spec::NodePublishVolumeRequest>,
    ) -> Result<Response<spec::NodePublishVolumeResponse>, Status> {
        let r = req.into_inner();
        if r.volume_id.is_empty() || r.target_path.is_empty() {
            return Err(Status::invalid_argument(
                "a volume id and a target path are needed",
            ));
        }
        let cap = r
            .volume_capability
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("no volume capability"))?;
        mode_of(cap)?;
        let want = asked(cap, r.readonly)?;
        let (server, name) = admin::parse_id(&r.volume_id)?;
        let id = admin::volume_id(server, name);
        let target = PathBuf::from(&r.target_path);
        if let Some(e) = mountinfo::at(&target) {
            // Published already: the same mount is this publish done; another is not.
            return match want.differs(&e, &id) {
                None => Ok(Response::new(spec::NodePublishVolumeResponse {})),
                Some(why) => Err(Status::already_exists(format!(
                    "{} is published otherwise: {why}",
                    target.display()
                ))),
            };
        }
        let token = admin::token(&r.secrets, MOUNT_SECRET, self.token_file.as_deref())?;
        let token_file = token
            .as_deref()
            .map(|t| SecretFile::new("token", t))
            .transpose()?;
        let (tls_arg, _ca_file) = self.tls(&r)?;
        std::fs::create_dir_all(&target)
            .map_err(|e| Status::internal(format!("{}: {e}", target.display())))?;
        let mut cmd = Command::new(&self.rwxfs);
        cmd.arg("mount")
            .arg(&id)
            .arg(&target)
            .args(["--node-id", &self.node_id, "--no-wait"])
            .args(want.args());
        if let Some(t) = &token_file {
            cmd.arg("--token-file").arg(&t.0);
        }
        if let Some(ca) = &tls_arg {
            cmd.arg("--tls-ca").arg(ca);
        }
        match run(cmd).await {
            Ok(()) => Ok(Response::new(spec::NodePublishVolumeResponse {})),
            Err(why) if why.contains("ReadWriteOnce") => Err(Status::failed_precondition(why)),
            Err(why) if why.contains("no export named") => Err(Status::not_found(why)),
            Err(why) => Err(Status::internal(why)),
        }
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<spec::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<spec::NodeUnpublishVolumeResponse>, Status> {
        let r = req.into_inner();
        if r.volume_id.is_empty() || r.target_path.is_empty() {
            return Err(Status::invalid_argument(
                "a volume id and a target path are needed",
            ));
        }
        let target = PathBuf::from(&r.target_path);
        if is_mounted(&target) {
            let mut cmd = Command::new("umount");
            cmd.arg(&target);
            run(cmd)
                .await
                .map_err(|why| Status::internal(format!("umount {}: {why}", target.display())))?;
        }
        match std::fs::remove_dir(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Status::internal(format!("{}: {e}", target.display()))),
        }
        Ok(Response::new(spec::NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<spec::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<spec::NodeGetVolumeStatsResponse>, Status> {
        let r = req.into_inner();
        if r.volume_id.is_empty() || r.volume_path.is_empty() {
            return Err(Status::invalid_argument(
                "a volume id and a volume path are needed",
            ));
        }
        let path = PathBuf::from(&r.volume_path);
        if !is_mounted(&path) && !path.exists() {
            return Err(Status::not_found(format!(
                "{} is not published",
                path.display()
            )));
        }
        Ok(Response::new(stats(&path)))
    }

    async fn node_expand_volume(
        &self,
        _: Request<spec::NodeExpandVolumeRequest>,
    ) -> Result<Response<spec::NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "the server grows a volume; nothing to do on the node",
        ))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<spec::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<spec::NodeGetCapabilitiesResponse>, Status> {
        let rpc = |t: rpc::Type| NodeServiceCapability {
            r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
        };
        Ok(Response::new(spec::NodeGetCapabilitiesResponse {
            capabilities: vec![
                rpc(rpc::Type::GetVolumeStats),
                rpc(rpc::Type::VolumeCondition),
            ],
        }))
    }

    async fn node_get_info(
        &self,
        _: Request<spec::NodeGetInfoRequest>,
    ) -> Result<Response<spec::NodeGetInfoResponse>, Status> {
        Ok(Response::new(spec::NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            ..Default::default()
        }))
    }
}

/// A published volume's use (its export's quota as the size), or an abnormal condition
/// when its mount answers no more.
fn stats(path: &Path) -> spec::NodeGetVolumeStatsResponse {
    use spec::volume_usage::Unit;
    let abnormal = |message: String| spec::NodeGetVolumeStatsResponse {
        usage: Vec::new(),
        volume_condition: Some(spec::VolumeCondition {
            abnormal: true,
            message,
        }),
    };
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return abnormal("the path holds a NUL byte".into());
    };
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        let e = std::io::Error::last_os_error();
        return abnormal(format!(
            "the mount at {} does not answer: {e}",
            path.display()
        ));
    }
    let bs = st.f_frsize as i64;
    let usage = |unit: Unit, total: i64, available: i64| spec::VolumeUsage {
        available,
        total,
        used: total - available,
        unit: unit as i32,
    };
    spec::NodeGetVolumeStatsResponse {
        usage: vec![
            usage(
                Unit::Bytes,
                st.f_blocks as i64 * bs,
                st.f_bavail as i64 * bs,
            ),
            usage(Unit::Inodes, st.f_files as i64, st.f_ffree as i64),
        ],
        volume_condition: Some(spec::VolumeCondition {
            abnormal: false,
            message: "mounted".into(),
        }),
    }
}
