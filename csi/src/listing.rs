//! ListVolumes and GetCapacity. The volumes are the exports of the servers the driver knows
//! (`--server`), in the order of their ids; a page's token is the id of its last volume, so a
//! volume made or deleted between pages neither repeats nor hides another. The capacity is
//! the server's free space: an export's quota caps it, it reserves nothing.

use tonic::Status;

use crate::admin;
use crate::modes::mode_of;
use crate::spec::{self, list_volumes_response::Entry};

/// Every volume of `servers`, the page `r` asks for.
pub(crate) async fn list(
    servers: &[String],
    creds: admin::Creds,
    r: spec::ListVolumesRequest,
) -> Result<spec::ListVolumesResponse, Status> {
    let max = usize::try_from(r.max_entries)
        .map_err(|_| Status::invalid_argument("a negative max_entries"))?;
    if !r.starting_token.is_empty() && admin::parse_id(&r.starting_token).is_err() {
        return Err(Status::aborted(format!(
            "starting_token {:?} is not one this driver gave",
            r.starting_token
        )));
    }
    let mut all = Vec::new();
    for server in servers {
        let exports = admin::run(server, creds.clone(), protocol::ExportCmd::List).await?;
        all.extend(
            exports
                .iter()
                .map(|e| crate::controller::volume(server, e, creds.tls.is_some())),
        );
    }
    let (volumes, next_token) = page(all, max, &r.starting_token);
    Ok(spec::ListVolumesResponse {
        entries: volumes
            .into_iter()
            .map(|v| Entry {
                volume: Some(v),
                status: None,
            })
            .collect(),
        next_token,
    })
}

/// The volumes after `after` (an id; empty for the first page), at most `max` of them (0:
/// all), and the token of the page after them (empty if none).
fn page(mut all: Vec<spec::Volume>, max: usize, after: &str) -> (Vec<spec::Volume>, String) {
    all.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
    all.retain(|v| after.is_empty() || v.volume_id.as_str() > after);
    if max == 0 || all.len() <= max {
        return (all, String::new());
    }
    all.truncate(max);
    let next = all.last().map(|v| v.volume_id.clone()).unwrap_or_default();
    (all, next)
}

/// The room for a new volume on `server`: none for capabilities rwxfs does not offer.
pub(crate) async fn capacity(
    server: &str,
    creds: admin::Creds,
    r: &spec::GetCapacityRequest,
) -> Result<spec::GetCapacityResponse, Status> {
    let offered = r.volume_capabilities.iter().all(|c| mode_of(c).is_ok());
    let space = admin::space(server, creds).await?;
    let free = match offered {
        true => i64::try_from(space.bytes_free).unwrap_or(i64::MAX),
        false => 0,
    };
    Ok(spec::GetCapacityResponse {
        available_capacity: free,
        maximum_volume_size: Some(free),
        minimum_volume_size: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vols(ids: &[&str]) -> Vec<spec::Volume> {
        ids.iter()
            .map(|id| spec::Volume {
                volume_id: id.to_string(),
                ..Default::default()
            })
            .collect()
    }

    fn ids(v: &[spec::Volume]) -> Vec<&str> {
        v.iter().map(|v| v.volume_id.as_str()).collect()
    }

    #[test]
    fn pages_follow_ids_and_survive_deletion() {
        let all = vols(&["h:1/c", "h:1/a", "h:2/a", "h:1/b"]);
        let (p, next) = page(all.clone(), 2, "");
        assert_eq!((ids(&p), next.as_str()), (vec!["h:1/a", "h:1/b"], "h:1/b"));
        // h:1/b deleted meanwhile: the next page starts after it all the same.
        let fewer = vols(&["h:1/c", "h:1/a", "h:2/a"]);
        let (p, next) = page(fewer, 2, "h:1/b");
        assert_eq!((ids(&p), next.as_str()), (vec!["h:1/c", "h:2/a"], ""));
        let (p, next) = page(all, 0, "");
        assert_eq!((p.len(), next.as_str()), (4, ""));
    }
}
