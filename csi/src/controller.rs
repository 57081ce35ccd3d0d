//! The controller service: a volume is an export, made with the capacity and access mode
//! asked for on the server a StorageClass names (parameter `server`, else the driver's first
//! `--server`), resized, deleted; the volumes of the servers it knows listed, and their room.

use std::collections::HashMap;
use std::path::PathBuf;

use protocol::{ExportCmd, ExportInfo};
use tonic::{Request, Response, Status};

use crate::admin::{self, ADMIN_SECRET};
use crate::listing;
use crate::modes::{mode_for, mode_of};
use crate::spec::controller_service_capability::{rpc, Rpc, Type};
use crate::spec::{self, ControllerServiceCapability};
use crate::SERVER_PARAM;

/// A volume's size when none is asked for.
const DEFAULT_BYTES: i64 = 1 << 30;

/// The controller service.
pub(crate) struct Controller {
    admin_token_file: Option<PathBuf>,
    /// The CA for servers' TLS when a request carries none (`--tls-ca`).
    tls_ca: Option<PathBuf>,
    /// The servers it knows (`--server`); the first is the default.
    servers: Vec<String>,
}

impl Controller {
    pub(crate) fn new(opts: &crate::Options) -> Controller {
        Controller {
            admin_token_file: opts.admin_token_file.clone(),
            tls_ca: opts.tls_ca.clone(),
            servers: opts.servers.clone(),
        }
    }

    /// The administrator's token and TLS, from a request's `secrets` or the driver's files.
    fn creds(&self, secrets: &HashMap<String, String>) -> Result<admin::Creds, Status> {
        Ok(admin::Creds {
            token: admin::token(secrets, ADMIN_SECRET, self.admin_token_file.as_deref())?,
            tls: admin::tls(secrets, self.tls_ca.as_deref())?,
        })
    }

    /// The server StorageClass `parameters` name, else the first the driver knows.
    fn server(&self, parameters: &HashMap<String, String>) -> Result<String, Status> {
        parameters
            .get(SERVER_PARAM)
            .or(self.servers.first())
            .cloned()
            .ok_or_else(|| {
                Status::invalid_argument(
                    "StorageClass parameter `server` (HOST:PORT) is missing, and the driver \
                     has no --server",
                )
            })
    }
}

/// The bytes a capacity range asks for: at least `required_bytes`, at most `limit_bytes`.
fn capacity(range: Option<&spec::CapacityRange>) -> Result<u64, Status> {
    let Some(r) = range else {
        return Ok(DEFAULT_BYTES as u64);
    };
    if r.required_bytes < 0 || r.limit_bytes < 0 {
        return Err(Status::invalid_argument("a negative capacity"));
    }
    if r.limit_bytes > 0 && r.limit_bytes < r.required_bytes {
        return Err(Status::invalid_argument(
            "capacity limit below the required bytes",
        ));
    }
    Ok(match (r.required_bytes, r.limit_bytes) {
        (0, 0) => DEFAULT_BYTES,
        (0, limit) => limit.min(DEFAULT_BYTES),
        (required, _) => required,
    } as u64)
}

/// The owner, group and permission bits of a new volume's root, from StorageClass
/// `parameters` (`OWNER_PARAMS`): 0755 if they name an owner, else root's and 0777.
fn owner(parameters: &HashMap<String, String>) -> Result<(u32, u32, u32), Status> {
    let [uid, gid, perm] = crate::OWNER_PARAMS.map(|k| parameters.get(k));
    let id = |key: &str, v: Option<&String>| {
        v.map_or(Ok(0), |v| v.parse::<u32>()).map_err(|_| {
            Status::invalid_argument(format!(
                "StorageClass parameter {key}: {v:?} is not a number"
            ))
        })
    };
    let perm = match perm {
        None if uid.is_some() || gid.is_some() => 0o755,
        None => 0o777,
        Some(p) => u32::from_str_radix(p.strip_prefix("0o").unwrap_or(p), 8)
            .ok()
            .filter(|p| *p <= 0o7777)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "StorageClass parameter mountPermissions: {p:?} is not octal permission \
                     bits (e.g. \"0777\")"
                ))
            })?,
    };
    Ok((id("uid", uid)?, id("gid", gid)?, perm))
}

/// Export `e` of `server` as a CSI volume; `tls` if the server speaks it.
pub(crate) fn volume(server: &str, e: &ExportInfo, tls: bool) -> spec::Volume {
    let mut volume_context: HashMap<String, String> = [
        ("server".to_string(), server.to_string()),
        ("export".to_string(), e.name.clone()),
        ("accessMode".to_string(), e.mode.to_string()),
    ]
    .into();
    if tls {
        volume_context.insert(admin::TLS_CONTEXT.into(), "true".into());
    }
    spec::Volume {
        capacity_bytes: e.bytes as i64,
        volume_id: admin::volume_id(server, &e.name),
        volume_context,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl spec::controller_server::Controller for Controller {
    async fn create_volume(
        &self,
        req: Request<spec::CreateVolumeRequest>,
    ) -> Result<Response<spec::CreateVolumeResponse>, Status> {
        let r = req.into_inner();
        if r.name.is_empty() {
            return Err(Status::invalid_argument("a volume needs a name"));
        }
        let mode = mode_for(&r.volume_capabilities, &r.parameters)?;
        let bytes = capacity(r.capacity_range.as_ref())?;
        let server = self.server(&r.parameters)?;
        if r.volume_content_source.is_some() {
            return Err(Status::invalid_argument(
                "volumes from snapshots or clones are not supported",
            ));
        }
        let name = admin::export_name(&r.name);
        let creds = self.creds(&r.secrets)?;
        let (uid, gid, perm) = owner(&r.parameters)?;
        let cmd = ExportCmd::CreateOwned {
            name: name.clone(),
            bytes,
            inodes: 0,
            mode,
            uid,
            gid,
            perm,
        };
        let list = match admin::run(&server, creds.clone(), cmd).await {
            Ok(list) => list,
            // Asked again (the provisioner retries): the same volume if it is the same.
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                admin::run(&server, creds.clone(), ExportCmd::List).await?
            }
            Err(s) => return Err(s),
        };
        let e =
            admin::find(&list, &name).ok_or_else(|| Status::internal("made, then not listed"))?;
        let limit = r.capacity_range.as_ref().map_or(0, |c| c.limit_bytes);
        if e.mode != mode || e.bytes < bytes || (limit > 0 && e.bytes > limit as u64) {
            return Err(Status::already_exists(format!(
                "volume {name} exists with another size or access mode ({} bytes, {})",
                e.bytes, e.mode
            )));
        }
        Ok(Response::new(spec::CreateVolumeResponse {
            volume: Some(volume(&server, e, creds.tls.is_some())),
        }))
    }

    async fn delete_volume(
        &self,
        req: Request<spec::DeleteVolumeRequest>,
    ) -> Result<Response<spec::DeleteVolumeResponse>, Status> {
        let r = req.into_inner();
        if r.volume_id.is_empty() {
            return Err(Status::invalid_argument("no volume id"));
        }
        let Ok((server, name)) = admin::parse_id(&r.volume_id) else {
            // Not one of ours, so not there: deleted.
            return Ok(Response::new(spec::DeleteVolumeResponse {}));
        };
        let cmd = ExportCmd::Delete { name: name.into() };
        match admin::run(server, self.creds(&r.secrets)?, cmd).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(s),
        }
        Ok(Response::new(spec::DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        _: Request<spec::ControllerPublishVolumeRequest>,
    ) -> Result<Response<spec::ControllerPublishVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "no controller publish: the server admits mounts",
        ))
    }

    async fn controller_unpublish_volume(
        &self,
        _: Request<spec::ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<spec::ControllerUnpublishVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "no controller unpublish: the server admits mounts",
        ))
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<spec::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<spec::ValidateVolumeCapabilitiesResponse>, Status> {
        let r = req.into_inner();
        if r.volume_id.is_empty() {
            return Err(Status::invalid_argument("no volume id"));
        }
        if r.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("no volume capabilities"));
        }
        let (server, name) = admin::parse_id(&r.volume_id)?;
        let list = admin::run(server, self.creds(&r.secrets)?, ExportCmd::List).await?;
        let e = admin::find(&list, name)
            .ok_or_else(|| Status::not_found(format!("no volume {}", r.volume_id)))?;
        let fits = r
            .volume_capabilities
            .iter()
            .all(|c| mode_of(c).is_ok_and(|m| m == e.mode));
        let response = match fits {
            true => spec::ValidateVolumeCapabilitiesResponse {
                confirmed: Some(spec::validate_volume_capabilities_response::Confirmed {
                    volume_context: r.volume_context,
                    volume_capabilities: r.volume_capabilities,
                    parameters: r.parameters,
                    mutable_parameters: Default::default(),
                }),
                message: String::new(),
            },
            false => spec::ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message: format!("volume {} is {}", r.volume_id, e.mode),
            },
        };
        Ok(Response::new(response))
    }

    async fn list_volumes(
        &self,
        req: Request<spec::ListVolumesRequest>,
    ) -> Result<Response<spec::ListVolumesResponse>, Status> {
        let creds = self.creds(&HashMap::new())?;
        listing::list(&self.servers, creds, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_capacity(
        &self,
        req: Request<spec::GetCapacityRequest>,
    ) -> Result<Response<spec::GetCapacityResponse>, Status> {
        let r = req.into_inner();
        let server = self.server(&r.parameters)?;
        let creds = self.creds(&HashMap::new())?;
        listing::capacity(&server, creds, &r)
            .await
            .map(Response::new)
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<spec::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<spec::ControllerGetCapabilitiesResponse>, Status> {
        let rpc = |t: rpc::Type| ControllerServiceCapability {
            r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
        };
        let mut capabilities = vec![
            rpc(rpc::Type::CreateDeleteVolume),
            rpc(rpc::Type::ExpandVolume),
            rpc(rpc::Type::SingleNodeMultiWriter),
            rpc(rpc::Type::GetCapacity),
        ];
        // Volumes are listed from the servers the driver knows: none, no listing.
        if !self.servers.is_empty() {
            capabilities.push(rpc(rpc::Type::ListVolumes));
        }
        Ok(Response::new(spec::ControllerGetCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn create_snapshot(
        &self,
        _: Request<spec::CreateSnapshotRequest>,
    ) -> Result<Response<spec::CreateSnapshotResponse>, Status> {
        Err(Status::unimplemented("no snapshots"))
    }

    async fn delete_snapshot(
        &self,
        _: Request<spec::DeleteSnapshotRequest>,
    ) -> Result<Response<spec::DeleteSnapshotResponse>, Status> {
        Err(Status::unimplemented("no snapshots"))
    }

    async fn list_snapshots(
        &self,
        _: Request<spec::ListSnapshotsRequest>,
    ) -> Result<Response<spec::ListSnapshotsResponse>, Status> {
        Err(Status::unimplemented("no snapshots"))
    }

    async fn controller_expand_volume(
        &self,
        req: Request<spec::ControllerExpandVolumeRequest>,
    ) -> Result<Response<spec::ControllerExpandVolumeResponse>, Status> {
        let r = req.into_inner();
        if r.volume_id.is_empty() {
            return Err(Status::invalid_argument("no volume id"));
        }
        let (server, name) = admin::parse_id(&r.volume_id)?;
        let bytes = capacity(r.capacity_range.as_ref())?;
        let creds = self.creds(&r.secrets)?;
        let list = admin::run(server, creds.clone(), ExportCmd::List).await?;
        let e = admin::find(&list, name)
            .ok_or_else(|| Status::not_found(format!("no volume {}", r.volume_id)))?;
        let mut now = e.bytes;
        if e.bytes < bytes {
            let cmd = ExportCmd::Resize {
                name: name.into(),
                bytes,
                inodes: 0,
            };
            let list = admin::run(server, creds, cmd).await?;
            now = admin::find(&list, name).map_or(bytes, |e| e.bytes);
        }
        Ok(Response::new(spec::ControllerExpandVolumeResponse {
            capacity_bytes: now as i64,
            node_expansion_required: false,
        }))
    }

    async fn controller_get_volume(
        &self,
        _: Request<spec::ControllerGetVolumeRequest>,
    ) -> Result<Response<spec::ControllerGetVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "no volume health from the controller",
        ))
    }

    async fn controller_modify_volume(
        &self,
        _: Request<spec::ControllerModifyVolumeRequest>,
    ) -> Result<Response<spec::ControllerModifyVolumeResponse>, Status> {
        Err(Status::unimplemented("no volume modification"))
    }
}
