//! Talking to an rwxfs server as its administrator, and naming volumes: a volume's id is
//! `HOST:PORT/NAME`, the server and the export, so every call knows both.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use protocol::{ExportCmd, ExportInfo, VolumeSpace};
use tonic::Status;

/// The key of the secret holding the administrator's token (a StorageClass's provisioner
/// and controller-expand secrets).
pub const ADMIN_SECRET: &str = "adminToken";
/// The key of the secret holding the mounts' token (a StorageClass's node-publish secret).
pub const MOUNT_SECRET: &str = "token";
/// The secret holding the CA (PEM) a server's TLS certificate is checked with, in the
/// provisioner, controller-expand and node-publish secrets alike.
pub const TLS_SECRET: &str = "tlsCA";
/// The volume context's key saying the volume was made over TLS.
pub(crate) const TLS_CONTEXT: &str = "tls";

/// A client TLS configuration, or None for plain TCP.
pub(crate) type Tls = Option<Arc<rustls::ClientConfig>>;

/// How the driver speaks to a server as its administrator.
#[derive(Clone)]
pub(crate) struct Creds {
    /// The administrator's token.
    pub(crate) token: Option<Vec<u8>>,
    /// TLS, if the server speaks it.
    pub(crate) tls: Tls,
}

/// The TLS a request's connections speak: the CA of its `tlsCA` secret, else of `file`
/// (`--tls-ca`); plain TCP with neither.
pub(crate) fn tls(secrets: &HashMap<String, String>, file: Option<&Path>) -> Result<Tls, Status> {
    let config = match (secrets.get(TLS_SECRET), file) {
        (Some(pem), _) => {
            let what = format!("secret {TLS_SECRET}");
            client_fuse::transport::client_config_pem(pem.as_bytes(), &what)
                .map_err(Status::invalid_argument)?
        }
        (None, Some(f)) => {
            client_fuse::transport::client_config(f).map_err(Status::failed_precondition)?
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(config))
}

/// A volume's id: the server and the export.
pub(crate) fn volume_id(server: &str, export: &str) -> String {
    format!("{server}/{export}")
}

/// The server and the export a volume id names.
pub(crate) fn parse_id(id: &str) -> Result<(&str, &str), Status> {
    match id.rsplit_once('/') {
        Some((server, name)) if !server.is_empty() && !name.is_empty() => Ok((server, name)),
        _ => Err(Status::not_found(format!(
            "volume id {id:?} is not an rwxfs volume (HOST:PORT/NAME)"
        ))),
    }
}

/// The export a CSI volume name becomes: letters, digits, `-`, `_` and `.` kept, anything
/// else `-`, at most 200 bytes, never starting with `.`.
pub(crate) fn export_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                true => c,
                false => '-',
            },
        )
        .take(200)
        .collect();
    if out.starts_with('.') {
        out.replace_range(..1, "v");
    }
    out
}

/// A token from the request's secret `key`, else from `file`.
pub(crate) fn token(
    secrets: &HashMap<String, String>,
    key: &str,
    file: Option<&Path>,
) -> Result<Option<Vec<u8>>, Status> {
    let raw = match (secrets.get(key), file) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, Some(f)) => std::fs::read(f)
            .map_err(|e| Status::failed_precondition(format!("{}: {e}", f.display())))?,
        (None, None) => return Ok(None),
    };
    protocol::auth::token_from_file(&raw)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("secret {key}: {e}")))
}

/// Run `cmd` on the server at `server` as its administrator; every export afterwards. The
/// server's refusals become the gRPC codes CSI asks for.
pub(crate) async fn run(
    server: &str,
    creds: Creds,
    cmd: ExportCmd,
) -> Result<Vec<ExportInfo>, Status> {
    let token = need(server, creds.token)?;
    let (server, tls) = (server.to_string(), creds.tls);
    blocking(move || client_fuse::link::administer(&server, &token, tls.as_ref(), cmd)).await
}

/// The whole volume's size and what is free in it, of the server at `server`.
pub(crate) async fn space(server: &str, creds: Creds) -> Result<VolumeSpace, Status> {
    let token = need(server, creds.token)?;
    let (server, tls) = (server.to_string(), creds.tls);
    blocking(move || client_fuse::link::volume_space(&server, &token, tls.as_ref())).await
}

/// The administrator's token, or why there is none.
fn need(server: &str, token: Option<Vec<u8>>) -> Result<Vec<u8>, Status> {
    token.ok_or_else(|| {
        Status::invalid_argument(format!(
            "no administrator token for {server}: give the {ADMIN_SECRET} secret or \
             --admin-token-file"
        ))
    })
}

/// Call `f` off the async threads; the server's refusals as the codes CSI asks for, a
/// server that cannot be reached UNAVAILABLE.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, client_fuse::link::DialError> + Send + 'static,
) -> Result<T, Status> {
    let r = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    r.map_err(|e| match e {
        client_fuse::link::DialError::StatusRefused(why) => refused(why),
        e => Status::unavailable(e.to_string()),
    })
}

/// A server's refusal as the code CSI asks for.
fn refused(why: String) -> Status {
    if why.contains("no export named") {
        Status::not_found(why)
    } else if why.contains("exists") {
        Status::already_exists(why)
    } else if why.contains("is mounted on node") {
        Status::failed_precondition(why)
    } else if why.contains("cannot be made smaller") {
        Status::out_of_range(why)
    } else if why.contains("authentication") || why.contains("administration") {
        Status::permission_denied(why)
    } else {
        Status::invalid_argument(why)
    }
}

/// Export `name` among `list`.
pub(crate) fn find<'a>(list: &'a [ExportInfo], name: &str) -> Option<&'a ExportInfo> {
    list.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(export_name("pvc-1a2b_C.d"), "pvc-1a2b_C.d");
        assert_eq!(export_name(".a/b c"), "va-b-c");
        assert_eq!(export_name(&"x".repeat(300)).len(), 200);
        assert_eq!(
            parse_id("10.0.0.1:7411/pvc-1").unwrap(),
            ("10.0.0.1:7411", "pvc-1")
        );
        assert!(parse_id("nothing").is_err());
        assert!(parse_id("host:1/").is_err());
    }
}
