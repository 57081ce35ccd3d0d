//! The controller's ListVolumes and GetCapacity over the driver's socket: every volume of
//! the servers the driver knows (`--server`), a page at a time with tokens that survive a
//! volume deleted between pages, a token not its own refused with ABORTED; the capacity a
//! new volume can have, falling as the volume fills.

use std::collections::HashMap;

use rwxfs_csi::spec;
use rwxfs_csi::spec::controller_service_capability::rpc::Type as Rpc;
use rwxfs_csi::spec::controller_service_capability::Type;
use rwxfs_csi::spec::volume_capability::access_mode::Mode;
use rwxfs_tests::{assert_fsck_clean, harness};
use tonic::Code;

mod csi_kit;
use csi_kit::{runtime, served, Driver, Kube, MIB};

type Controller = spec::controller_client::ControllerClient<tonic::transport::Channel>;

/// One page of ListVolumes: its volume ids and its next token.
async fn page(
    c: &mut Controller,
    max: i32,
    token: &str,
) -> Result<(Vec<String>, String), tonic::Status> {
    let r = spec::ListVolumesRequest {
        max_entries: max,
        starting_token: token.into(),
    };
    let r = c.list_volumes(r).await?.into_inner();
    let ids = r
        .entries
        .iter()
        .map(|e| e.volume.as_ref().unwrap().volume_id.clone())
        .collect();
    Ok((ids, r.next_token))
}

async fn available(
    c: &mut Controller,
    params: HashMap<String, String>,
) -> Result<i64, tonic::Status> {
    let r = spec::GetCapacityRequest {
        parameters: params,
        ..Default::default()
    };
    Ok(c.get_capacity(r).await?.into_inner().available_capacity)
}

#[test]
fn volumes_are_listed_in_pages_and_capacity_is_the_volumes_free_space() {
    let mut h = harness();
    let s = served(&mut h, "64M", &[]);
    let mut n1 = Driver::start_with(&s.dir, "n1", &s.admin, &s.none, &["--server", &s.server]);
    let target = s.dir.join("pod");
    n1.targets.push(target.clone());
    runtime().block_on(async {
        let mut k = Kube::of(&[&n1], &s.server, "").await;
        let caps = k
            .controller
            .controller_get_capabilities(spec::ControllerGetCapabilitiesRequest {})
            .await
            .unwrap()
            .into_inner()
            .capabilities;
        let rpcs: Vec<i32> = caps
            .iter()
            .filter_map(|c| match &c.r#type {
                Some(Type::Rpc(r)) => Some(r.r#type),
                _ => None,
            })
            .collect();
        for want in [Rpc::ListVolumes, Rpc::GetCapacity] {
            assert!(rpcs.contains(&(want as i32)), "{want:?} not declared");
        }
        let c = &mut k.controller.clone();
        assert_eq!(page(c, 0, "").await.unwrap(), (vec![], String::new()));
        let free = available(c, HashMap::new()).await.unwrap();
        assert!(free > 48 * MIB && free <= 64 * MIB, "{free}");
        let mut ids = Vec::new();
        for n in 0..5 {
            let name = format!("pvc-{n}");
            let v = k.create(&name, 4 * MIB, Mode::MultiNodeMultiWriter).await;
            ids.push(v.unwrap().volume_id);
        }
        // All in one, then two at a time; the last of a page deleted before the next.
        let (all, next) = page(c, 0, "").await.unwrap();
        assert_eq!((all, next), (ids.clone(), String::new()));
        let (first, token) = page(c, 2, "").await.unwrap();
        assert_eq!(first, ids[..2]);
        assert!(!token.is_empty());
        k.delete(&ids[1]).await;
        let (second, token) = page(c, 2, &token).await.unwrap();
        assert_eq!(second, ids[2..4]);
        let (third, token) = page(c, 2, &token).await.unwrap();
        assert_eq!((third, token), (ids[4..].to_vec(), String::new()));
        for bad in ["invalid-token", "x"] {
            let e = page(c, 0, bad).await.unwrap_err();
            assert_eq!(e.code(), Code::Aborted, "{bad}: {e}");
        }
        let e = page(c, -1, "").await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
        // The capacity is the volume's free space: it falls by what a volume holds.
        k.publish(0, &ids[0], &target, Mode::MultiNodeMultiWriter)
            .await
            .unwrap();
        let fill = format!(
            "dd if=/dev/urandom of={}/f bs=1M count=3 conv=fsync",
            target.display()
        );
        let (ok, out) = n1.sh(&fill);
        assert!(ok, "{out}");
        // A volume's root is root's and 0777 unless the StorageClass names an owner.
        let stat = format!("stat -c '%u %g %a' {}", target.display());
        assert_eq!(n1.sh(&stat).1, "0 0 777\n");
        let mut owned = spec::CreateVolumeRequest {
            name: "pvc-owned".into(),
            volume_capabilities: vec![csi_kit::cap(Mode::MultiNodeMultiWriter)],
            parameters: HashMap::from([
                ("uid".into(), "1000".into()),
                ("gid".into(), "2000".into()),
                ("mountPermissions".into(), "0777".into()),
            ]),
            secrets: HashMap::from([("adminToken".into(), k.admin.clone())]),
            ..Default::default()
        };
        let v = c.create_volume(owned.clone()).await.unwrap().into_inner();
        let owned_id = v.volume.unwrap().volume_id;
        let t2 = s.dir.join("pod-owned");
        n1.targets.push(t2.clone());
        k.publish(0, &owned_id, &t2, Mode::MultiNodeMultiWriter)
            .await
            .unwrap();
        let stat2 = format!("stat -c '%u %g %a' {}", t2.display());
        assert_eq!(n1.sh(&stat2).1, "1000 2000 777\n");
        k.unpublish(0, &owned_id, &t2).await;
        k.delete(&owned_id).await;
        owned.name = "pvc-bad".into();
        owned
            .parameters
            .insert("mountPermissions".into(), "a+rwx".into());
        let e = c.create_volume(owned).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");
        let after = available(c, HashMap::new()).await.unwrap();
        assert!(after <= free - 3 * MIB, "{after} of {free}");
        let named = HashMap::from([("server".to_string(), s.server.clone())]);
        assert_eq!(available(c, named).await.unwrap(), after);
        let elsewhere = HashMap::from([("server".to_string(), "127.0.0.1:1".to_string())]);
        let e = available(c, elsewhere).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e}");
        k.unpublish(0, &ids[0], &target).await;
        for id in &ids {
            k.delete(id).await;
        }
        assert_eq!(page(c, 0, "").await.unwrap(), (vec![], String::new()));
    });
    drop(n1);
    h.stop_server().unwrap();
    assert_fsck_clean(&s.img);
}
