//! The CSI driver and a server that speaks TLS: the controller's administration (create,
//! expand, list, capacity, delete) and the node's mounts trust the CA of the `tlsCA`
//! secret, or of `--tls-ca`; without either, a volume made over TLS is refused at publish
//! with FAILED_PRECONDITION naming what is missing, and administration is UNAVAILABLE
//! saying the server seems to speak TLS.

use std::collections::HashMap;

use rwxfs_csi::spec;
use rwxfs_csi::spec::volume_capability::access_mode::Mode;
use rwxfs_tests::certs::certificate;
use rwxfs_tests::{assert_fsck_clean, harness};
use tonic::Code;

mod csi_kit;
use csi_kit::{cap, runtime, served, Driver, Kube, ADMIN, MIB};

const RWX: Mode = Mode::MultiNodeMultiWriter;

#[test]
fn administration_and_mounts_speak_tls_with_the_ca_of_a_secret_or_the_driver() {
    let mut h = harness();
    let (cert, key) = certificate(&h, "server");
    let pem = std::fs::read_to_string(&cert).unwrap();
    let ca = cert.to_string_lossy().into_owned();
    let key = key.to_string_lossy().into_owned();
    let s = served(&mut h, "64M", &["--tls-cert", &ca, "--tls-key", &key]);
    // n1 trusts nothing of its own: the CA comes in the requests' secrets. n2 has --tls-ca.
    let mut n1 = Driver::start(&s.dir, "n1", &s.none, &s.none);
    let n2_args = ["--tls-ca", &ca, "--server", &s.server];
    let mut n2 = Driver::start_with(&s.dir, "n2", &s.admin, &s.none, &n2_args);
    let (t1, t2, t3) = (
        s.dir.join("pod-1"),
        s.dir.join("pod-2"),
        s.dir.join("pod-3"),
    );
    n1.targets.extend([t1.clone(), t3.clone()]);
    n2.targets.push(t2.clone());
    runtime().block_on(async {
        let mut k = Kube::of(&[&n1, &n2], &s.server, "").await;
        let secrets = |ca: Option<&str>| {
            let mut s = HashMap::from([("adminToken".to_string(), ADMIN.to_string())]);
            if let Some(ca) = ca {
                s.insert("tlsCA".into(), ca.into());
            }
            s
        };
        let create = |name: &str, ca: Option<&str>| spec::CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(spec::CapacityRange {
                required_bytes: 4 * MIB,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![cap(RWX)],
            parameters: HashMap::from([("server".into(), s.server.clone())]),
            secrets: secrets(ca),
            ..Default::default()
        };
        // No CA anywhere: a plain client is told the server seems to speak TLS.
        let e = k
            .controller
            .create_volume(create("pvc-plain", None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e}");
        assert!(e.message().contains("TLS"), "{e}");
        let v = k
            .controller
            .create_volume(create("pvc-tls", Some(&pem)))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        assert_eq!(
            v.volume_context.get("tls").map(String::as_str),
            Some("true")
        );
        let grow = spec::ControllerExpandVolumeRequest {
            volume_id: v.volume_id.clone(),
            capacity_range: Some(spec::CapacityRange {
                required_bytes: 8 * MIB,
                limit_bytes: 0,
            }),
            secrets: secrets(Some(&pem)),
            ..Default::default()
        };
        let grown = k.controller.controller_expand_volume(grow).await.unwrap();
        assert_eq!(grown.into_inner().capacity_bytes, 8 * MIB);
        let publish = |target: &std::path::Path, ca: Option<&str>| spec::NodePublishVolumeRequest {
            volume_id: v.volume_id.clone(),
            target_path: target.to_string_lossy().into_owned(),
            volume_capability: Some(cap(RWX)),
            volume_context: v.volume_context.clone(),
            secrets: ca
                .map(|c| ("tlsCA".to_string(), c.to_string()))
                .into_iter()
                .collect(),
            ..Default::default()
        };
        // A volume made over TLS, published with no CA: refused, saying what is missing.
        let e = k.publish_with(0, publish(&t3, None)).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
        assert!(e.message().contains("tlsCA"), "{e}");
        assert!(n1.mounted(&t3).is_none());
        // Mounted over TLS from the secret's CA (n1) and from --tls-ca (n2).
        k.publish_with(0, publish(&t1, Some(&pem))).await.unwrap();
        k.publish_with(1, publish(&t2, None)).await.unwrap();
        assert!(n1.sh(&format!("echo over-tls > {}/f", t1.display())).0);
        assert_eq!(n2.sh(&format!("cat {}/f", t2.display())).1, "over-tls\n");
        // n2's controller lists and measures with its --tls-ca.
        let mut c2 = spec::controller_client::ControllerClient::new(n2.channel().await);
        let list = c2
            .list_volumes(spec::ListVolumesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.entries.len(), 1);
        let cap2 = c2
            .get_capacity(spec::GetCapacityRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(cap2.available_capacity > 32 * MIB, "{cap2:?}");
        k.unpublish(0, &v.volume_id, &t1).await;
        k.unpublish(1, &v.volume_id, &t2).await;
        let del = spec::DeleteVolumeRequest {
            volume_id: v.volume_id.clone(),
            secrets: secrets(Some(&pem)),
        };
        k.controller.delete_volume(del).await.unwrap();
        let list = c2
            .list_volumes(spec::ListVolumesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(list.entries.is_empty(), "{list:?}");
    });
    drop(n1);
    drop(n2);
    h.stop_server().unwrap();
    assert_fsck_clean(&s.img);
}
