//! deploy/kubernetes/ validated without a cluster: every document is an object of the
//! Kubernetes API (its own types, k8s-openapi, API 1.33: nothing unknown or misplaced, nothing
//! required missing), the objects agree with each other and with the driver (its name, the
//! parameters and secret keys it reads, its socket, the server's address, the node plugin's
//! /dev/fuse and Bidirectional propagation), the rwxfs commands they run take the flags they
//! are given, and kustomization.yaml lists them all. Broken copies show each check failing.

mod refs;
mod schema;

use std::path::{Path, PathBuf};
use std::process::Command;

use refs::{Problems, Set, IMAGE};
use rwxfs_tests::bin;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The YAML files of `dir` (not below it), by name, kustomization.yaml left out.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .filter(|(n, _)| n != "kustomization.yaml")
        .collect();
    out.sort();
    out
}

/// Every object of `files`, typed; each document that is not a valid object is a problem.
fn parse(files: &[(String, String)]) -> (Set, Problems) {
    let mut set = Set::default();
    let mut problems = Problems::new();
    for (name, text) in files {
        match schema::documents(text) {
            Ok(docs) => {
                for (i, d) in docs.iter().enumerate() {
                    match schema::object(d) {
                        Ok(o) => set.add(o),
                        Err(e) => problems.push(format!("{name} document {}: {e}", i + 1)),
                    }
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    (set, problems)
}

/// Every problem of the driver's manifests `files`, with the example's.
fn problems(files: &[(String, String)]) -> Problems {
    let (set, mut p) = parse(files);
    p.extend(refs::check(&set));
    let (example, q) = parse(&self::files(&deploy().join("example")));
    p.extend(q);
    p.extend(refs::check_example(&set, &example));
    p
}

#[test]
fn the_manifests_are_kubernetes_objects_that_agree_with_the_driver_and_each_other() {
    let files = files(&deploy());
    assert!(files.len() >= 6, "{files:?}");
    let p = problems(&files);
    assert!(p.is_empty(), "deploy/kubernetes:\n{}", p.join("\n"));
    let (example, q) = parse(&self::files(&deploy().join("example")));
    assert!(q.is_empty(), "{q:?}");
    assert_eq!(example.claims.len(), 1);
    assert_eq!(
        example.deployments[0].spec.as_ref().unwrap().replicas,
        Some(3)
    );
}

#[test]
fn kustomization_lists_every_manifest_and_names_the_image() {
    let text = std::fs::read_to_string(deploy().join("kustomization.yaml")).unwrap();
    let k = &schema::documents(&text).unwrap()[0];
    let mut listed: Vec<&str> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    listed.sort();
    let present: Vec<String> = files(&deploy()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(listed, present);
    assert_eq!(k["images"][0]["name"], IMAGE);
}

/// Each rwxfs command a manifest runs (a container's args: a subcommand and its flags) is
/// one the binary has, with flags it takes.
#[test]
fn the_rwxfs_commands_the_manifests_run_take_the_flags_they_are_given() {
    let (set, p) = parse(&files(&deploy()));
    assert!(p.is_empty(), "{p:?}");
    let mut templates = Vec::new();
    templates.extend(
        set.statefulsets
            .iter()
            .map(|x| &x.spec.as_ref().unwrap().template),
    );
    templates.extend(
        set.deployments
            .iter()
            .map(|x| &x.spec.as_ref().unwrap().template),
    );
    templates.extend(
        set.daemonsets
            .iter()
            .map(|x| &x.spec.as_ref().unwrap().template),
    );
    let mut checked = 0;
    for t in templates {
        let spec = t.spec.as_ref().unwrap();
        for c in &spec.containers {
            if !c.image.as_deref().unwrap_or("").starts_with(IMAGE) {
                continue;
            }
            let args = c.args.clone().unwrap_or_default();
            let help = Command::new(bin())
                .arg(&args[0])
                .arg("--help")
                .output()
                .unwrap();
            assert!(help.status.success(), "rwxfs {} --help: {help:?}", args[0]);
            let help = String::from_utf8_lossy(&help.stdout);
            for a in args.iter().filter(|a| a.starts_with("--")) {
                let f = a.split('=').next().unwrap();
                assert!(
                    help.contains(&format!("{f} ")) || help.contains(&format!("{f}\n")),
                    "rwxfs {} has no {f} ({})",
                    args[0],
                    c.name
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{checked} flags checked");
}

/// A broken copy of one manifest: each check is seen to fail on what it is for.
#[test]
fn broken_manifests_are_refused_with_what_is_wrong() {
    let good = files(&deploy());
    let cases = [
        // A typo: an unknown field, dropped by the typed form.
        (
            "node.yaml",
            "mountPropagation: Bidirectional",
            "mountPropogation: Bidirectional",
            "mountPropogation: not a field",
        ),
        // A misplaced field: privileged belongs in securityContext.
        (
            "node.yaml",
            "          securityContext:\n            privileged: true\n",
            "          privileged: true\n          securityContext:\n",
            ".privileged: not a field",
        ),
        // A required field missing.
        (
            "controller.yaml",
            "- name: csi-resizer",
            "- nome: csi-resizer",
            "[2].name: required by the API and missing",
        ),
        // A value of the wrong type.
        (
            "server.yaml",
            "  replicas: 1\n",
            "  replicas: one\n",
            "StatefulSet: invalid type",
        ),
        (
            "storageclasses.yaml",
            "provisioner: rwxfs.csi.rwxfs.dev",
            "provisioner: rwxfs.example.com",
            "provisioner rwxfs.example.com",
        ),
        (
            "storageclasses.yaml",
            "accessMode: rwop",
            "accessMode: rwo",
            "does not match its name",
        ),
        (
            "storageclasses.yaml",
            "  server: rwxfs.rwxfs.svc",
            "  server: rwxfs.default.svc",
            "the server's Service is",
        ),
        (
            "storageclasses.yaml",
            "node-publish-secret-name: rwxfs-tokens",
            "node-publish-secret-name: tokens",
            "node-publish-secret-name is not",
        ),
        (
            "controller.yaml",
            "            - rwxfs.rwxfs.svc.cluster.local:7411",
            "            - rwxfs.rwxfs.svc.cluster.local:7412",
            "the controller's --server",
        ),
        (
            "controller.yaml",
            "              - key: adminToken",
            "              - key: token",
            "the controller's --admin-token-file",
        ),
        (
            "controller.yaml",
            "--csi-address=/csi/csi.sock",
            "--csi-address=/run/csi.sock",
            "dials \"/run/csi.sock\"",
        ),
        (
            "node.yaml",
            "--kubelet-registration-path=/var/lib/kubelet/plugins/rwxfs",
            "--kubelet-registration-path=/var/lib/kubelet/plugins/other",
            "the registrar registers",
        ),
        (
            "node.yaml",
            "              mountPath: /dev/fuse\n",
            "              mountPath: /dev/fuse0\n",
            "/dev/fuse",
        ),
        (
            "node.yaml",
            "mountPropagation: Bidirectional",
            "mountPropagation: HostToContainer",
            "Bidirectionally",
        ),
        (
            "node.yaml",
            "            privileged: true",
            "            privileged: false",
            "not privileged",
        ),
        (
            "server.yaml",
            "- key: adminToken",
            "- key: admin-token",
            "--admin-token-file",
        ),
        (
            "server.yaml",
            "0.0.0.0:7411",
            "0.0.0.0:7412",
            "--listen port",
        ),
        (
            "server.yaml",
            "          - ReadWriteOnce",
            "          - ReadWriteMany",
            "ReadWriteOnce claim",
        ),
        (
            "controller.yaml",
            "  name: rwxfs-controller-leases\n  namespace: rwxfs\nsubjects",
            "  name: rwxfs-controller-leases\n  namespace: kube-system\nsubjects",
            "no Role rwxfs-controller-leases",
        ),
    ];
    assert!(problems(&good).is_empty());
    for (file, from, to, want) in cases {
        let broken: Vec<(String, String)> = good
            .iter()
            .map(|(n, t)| match n == file {
                true => (n.clone(), t.replacen(from, to, 1)),
                false => (n.clone(), t.clone()),
            })
            .collect();
        assert_ne!(broken, good, "{file} has no {from:?}");
        let p = problems(&broken);
        assert!(
            p.iter().any(|x| x.contains(want)),
            "{file}: {from:?} → {to:?} should be refused with {want:?}, got:\n{}",
            p.join("\n")
        );
    }
}
