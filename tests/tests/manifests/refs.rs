//! What the manifests say of each other and of the driver must agree: the driver's name, the
//! StorageClass parameters and secret keys it reads, the socket its sidecars dial, the
//! server's address, the node plugin's /dev/fuse and Bidirectional propagation, the names
//! the RBAC objects and the workloads give each other.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    Container, Namespace, PersistentVolumeClaim, PodSpec, PodTemplateSpec, Service, ServiceAccount,
    Volume,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use protocol::AccessMode;
use rwxfs_csi::{ACCESS_MODE_PARAM, ADMIN_SECRET, DRIVER_NAME, MOUNT_SECRET, SERVER_PARAM};

use crate::schema::Object;

/// The image the project's containers run.
pub const IMAGE: &str = "localhost/rwxfs";

/// Every object of a set of manifests, by kind.
#[derive(Default)]
pub struct Set {
    pub namespaces: Vec<Namespace>,
    pub accounts: Vec<ServiceAccount>,
    pub services: Vec<Service>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub statefulsets: Vec<StatefulSet>,
    pub deployments: Vec<Deployment>,
    pub daemonsets: Vec<DaemonSet>,
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub bindings: Vec<RoleBinding>,
    pub drivers: Vec<CSIDriver>,
    pub classes: Vec<StorageClass>,
}

impl Set {
    pub fn add(&mut self, o: Object) {
        match o {
            Object::Namespace(x) => self.namespaces.push(x),
            Object::ServiceAccount(x) => self.accounts.push(x),
            Object::Service(x) => self.services.push(x),
            Object::PersistentVolumeClaim(x) => self.claims.push(x),
            Object::StatefulSet(x) => self.statefulsets.push(x),
            Object::Deployment(x) => self.deployments.push(x),
            Object::DaemonSet(x) => self.daemonsets.push(x),
            Object::ClusterRole(x) => self.cluster_roles.push(x),
            Object::ClusterRoleBinding(x) => self.cluster_bindings.push(x),
            Object::Role(x) => self.roles.push(x),
            Object::RoleBinding(x) => self.bindings.push(x),
            Object::CSIDriver(x) => self.drivers.push(x),
            Object::StorageClass(x) => self.classes.push(x),
        }
    }
}

/// Problems found, one line each.
pub type Problems = Vec<String>;

fn name(m: &ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or("")
}

fn ns(m: &ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or("default")
}

fn pod(t: &PodTemplateSpec) -> Option<&PodSpec> {
    t.spec.as_ref()
}

fn args(c: &Container) -> &[String] {
    c.args.as_deref().unwrap_or(&[])
}

/// The value of `--flag VALUE` or `--flag=VALUE` among `args`.
pub fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let eq = format!("{flag}=");
    args.iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix(&eq) {
            Some(v) => Some(v),
            None if a == flag => args.get(i + 1).map(String::as_str),
            None => None,
        })
}

/// The container of `spec` running the project's image, and the others.
fn split(spec: &PodSpec) -> (Vec<&Container>, Vec<&Container>) {
    spec.containers.iter().partition(|c| {
        c.image
            .as_deref()
            .is_some_and(|i| i.split(':').next() == Some(IMAGE))
    })
}

fn volume<'a>(spec: &'a PodSpec, name: &str) -> Option<&'a Volume> {
    spec.volumes.as_ref()?.iter().find(|v| v.name == name)
}

/// Where a path inside container `c` lies: the volume mounted at the longest prefix of it,
/// and the rest of the path below that mount.
fn on_volume<'a>(c: &'a Container, path: &'a str) -> Option<(&'a str, &'a str)> {
    c.volume_mounts
        .as_ref()?
        .iter()
        .filter_map(|m| {
            let rest = path.strip_prefix(m.mount_path.trim_end_matches('/'))?;
            rest.starts_with('/')
                .then_some((m.name.as_str(), rest, m.mount_path.len()))
        })
        .max_by_key(|(_, _, len)| *len)
        .map(|(v, rest, _)| (v, rest))
}

/// The driver's socket in a pod: the rwxfs container's --endpoint as (volume, path in it),
/// and every sidecar dialing exactly that place.
fn sockets(what: &str, spec: &PodSpec, sidecars: &[&str], p: &mut Problems) {
    let (ours, theirs) = split(spec);
    let Some(driver) = ours.first() else {
        return p.push(format!("{what}: no container runs {IMAGE}"));
    };
    let endpoint = flag(args(driver), "--endpoint").unwrap_or("");
    let Some(socket) = endpoint.strip_prefix("unix://") else {
        return p.push(format!(
            "{what}: the driver's --endpoint {endpoint:?} is not unix://"
        ));
    };
    let Some(at) = on_volume(driver, socket) else {
        return p.push(format!(
            "{what}: the driver's socket {socket} is on no volume"
        ));
    };
    for want in sidecars {
        let Some(c) = theirs.iter().find(|c| {
            c.image
                .as_deref()
                .is_some_and(|i| i.contains(&format!("/{want}:")))
        }) else {
            p.push(format!("{what}: no {want} sidecar"));
            continue;
        };
        let dial = flag(args(c), "--csi-address").unwrap_or("");
        if on_volume(c, dial) != Some(at) {
            p.push(format!(
                "{what}: {} dials {dial:?}, not the driver's socket {socket} (volume {})",
                c.name, at.0
            ));
        }
    }
}

/// The StorageClasses: this driver's, one per access mode, the parameters and secrets the
/// driver reads, the server's address.
fn classes(s: &Set, server: Option<&str>, secret: Option<&str>, p: &mut Problems) {
    let mut modes = BTreeSet::new();
    for c in &s.classes {
        let what = format!("StorageClass {}", name(&c.metadata));
        if c.provisioner != DRIVER_NAME {
            p.push(format!(
                "{what}: provisioner {} is not {DRIVER_NAME}",
                c.provisioner
            ));
        }
        let params = c.parameters.clone().unwrap_or_default();
        for k in params.keys() {
            let known = [SERVER_PARAM, ACCESS_MODE_PARAM].contains(&k.as_str())
                || k.starts_with("csi.storage.k8s.io/");
            if !known {
                p.push(format!("{what}: the driver reads no parameter {k:?}"));
            }
        }
        match params.get(SERVER_PARAM).map(String::as_str) {
            Some(a) if Some(a) == server => {}
            a => p.push(format!(
                "{what}: {SERVER_PARAM} {a:?}, the server's Service is {server:?}"
            )),
        }
        match params
            .get(ACCESS_MODE_PARAM)
            .map(|m| m.parse::<AccessMode>())
        {
            Some(Ok(m)) if name(&c.metadata).ends_with(&format!("-{m}")) => {
                modes.insert(m.name());
            }
            m => p.push(format!(
                "{what}: {ACCESS_MODE_PARAM} {m:?} does not match its name"
            )),
        }
        for step in ["provisioner", "controller-expand", "node-publish"] {
            let key = format!("csi.storage.k8s.io/{step}-secret-name");
            if params.get(&key).map(String::as_str) != secret {
                p.push(format!(
                    "{what}: {key} is not the server's Secret {secret:?}"
                ));
            }
            let key = format!("csi.storage.k8s.io/{step}-secret-namespace");
            let server_ns = s.statefulsets.first().map(|x| ns(&x.metadata));
            if params.get(&key).map(String::as_str) != server_ns {
                p.push(format!("{what}: {key} is not the server's namespace"));
            }
        }
    }
    let all: BTreeSet<&str> = AccessMode::ALL.iter().map(|m| m.name()).collect();
    if modes != all {
        p.push(format!(
            "StorageClasses for {modes:?}, not one per mode {all:?}"
        ));
    }
}

/// The Secret and key a file in container `c` of `spec` comes from, if it does.
fn secret_key(spec: &PodSpec, c: &Container, file: &str) -> Option<(String, String)> {
    let (v, rest) = on_volume(c, file)?;
    let src = volume(spec, v)?.secret.as_ref()?;
    let item = src
        .items
        .as_deref()?
        .iter()
        .find(|i| format!("/{}", i.path) == rest)?;
    Some((src.secret_name.clone()?, item.key.clone()))
}

/// The controller: its sidecars on its socket, the server it lists (`--server`) the one the
/// StorageClasses name, its administrator's token from the server's Secret.
fn controller(s: &Set, address: Option<&str>, secret: Option<&str>, p: &mut Problems) {
    let spec = s.deployments.first().and_then(|d| d.spec.as_ref());
    let Some(spec) = spec.and_then(|d| pod(&d.template)) else {
        return p.push("no controller Deployment".into());
    };
    sockets(
        "the controller",
        spec,
        &["csi-provisioner", "csi-resizer"],
        p,
    );
    let (ours, _) = split(spec);
    let Some(c) = ours.first() else { return };
    let servers: Vec<&str> = args(c)
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "--server")
        .filter_map(|(i, _)| args(c).get(i + 1).map(String::as_str))
        .collect();
    if servers.iter().any(|x| Some(*x) != address) {
        p.push(format!(
            "the controller's --server {servers:?} is not the server's Service {address:?}"
        ));
    }
    if let Some(file) = flag(args(c), "--admin-token-file") {
        let want = secret.map(|x| (x.to_string(), ADMIN_SECRET.to_string()));
        let got = secret_key(spec, c, file);
        if got.is_none() || got != want {
            p.push(format!(
                "the controller's --admin-token-file is {got:?}, not {want:?}"
            ));
        }
    }
}

/// The server: a StatefulSet of one on a ReadWriteOnce claim, listening where its Service
/// sends, with the Secret holding both tokens the driver's keys name. Its address and
/// Secret, as the StorageClasses must name them.
fn server(s: &Set, p: &mut Problems) -> (Option<String>, Option<String>) {
    let Some(set) = s.statefulsets.first() else {
        p.push("no server StatefulSet".into());
        return (None, None);
    };
    let spec = set.spec.as_ref().expect("a StatefulSet has a spec");
    if spec.replicas != Some(1) {
        p.push(format!(
            "the server's replicas are {:?}, not 1",
            spec.replicas
        ));
    }
    let claims = spec.volume_claim_templates.as_deref().unwrap_or(&[]);
    let rwo = claims.iter().all(|c| {
        c.spec.as_ref().and_then(|s| s.access_modes.clone()) == Some(vec!["ReadWriteOnce".into()])
    });
    if claims.len() != 1 || !rwo {
        p.push("the server is not on one ReadWriteOnce claim".into());
    }
    let podspec = pod(&spec.template).expect("a template has a spec");
    let (ours, _) = split(podspec);
    let Some(c) = ours
        .iter()
        .find(|c| args(c).first().map(String::as_str) == Some("serve"))
    else {
        p.push("no container runs `rwxfs serve`".into());
        return (None, None);
    };
    let listen: Option<i32> = flag(args(c), "--listen")
        .and_then(|l| l.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok());
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    let svc = s.services.iter().find(|v| {
        let sel = v
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        !sel.is_empty()
            && sel
                .iter()
                .all(|(k, x)| labels.as_ref().and_then(|l| l.get(k)) == Some(x))
    });
    let Some(svc) = svc else {
        p.push("no Service selects the server's pods".into());
        return (None, None);
    };
    let port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref()?.first().cloned());
    let target = port.as_ref().and_then(|x| x.target_port.clone());
    let container_port = c.ports.as_deref().unwrap_or(&[]).iter().find(|cp| {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match &target {
            Some(IntOrString::String(n)) => cp.name.as_deref() == Some(n),
            Some(IntOrString::Int(n)) => cp.container_port == *n,
            None => port.as_ref().is_some_and(|x| x.port == cp.container_port),
        }
    });
    if container_port.map(|cp| cp.container_port) != listen || listen.is_none() {
        p.push(format!(
            "the Service's target port is not the server's --listen port {listen:?}"
        ));
    }
    let address = port.map(|x| {
        format!(
            "{}.{}.svc.cluster.local:{}",
            name(&svc.metadata),
            ns(&svc.metadata),
            x.port
        )
    });
    // The Secret: both token files from it, under the keys the driver reads.
    let mut secret = None;
    for (flag_name, key) in [
        ("--token-file", MOUNT_SECRET),
        ("--admin-token-file", ADMIN_SECRET),
    ] {
        let file = flag(args(c), flag_name).unwrap_or("");
        match secret_key(podspec, c, file) {
            Some((s, k)) if k == key => {
                if secret.get_or_insert_with(|| s.clone()) != &s {
                    p.push("the server's two tokens come from two Secrets".into());
                }
            }
            f => p.push(format!(
                "the server's {flag_name} {file} is {f:?}, not key {key} of a Secret"
            )),
        }
    }
    (address, secret)
}

/// The node plugin: privileged, /dev/fuse, the kubelet's directory Bidirectional, and the
/// registrar telling kubelet the socket's path on the host.
fn node(s: &Set, p: &mut Problems) {
    let Some(ds) = s.daemonsets.first() else {
        return p.push("no node DaemonSet".into());
    };
    let spec = pod(&ds.spec.as_ref().expect("a DaemonSet has a spec").template).expect("a spec");
    sockets("the node plugin", spec, &["csi-node-driver-registrar"], p);
    let (ours, theirs) = split(spec);
    let Some(c) = ours.first() else { return };
    let privileged = c.security_context.as_ref().and_then(|s| s.privileged);
    if privileged != Some(true) {
        p.push("the node plugin is not privileged".into());
    }
    let host = |v: &str| volume(spec, v).and_then(|v| v.host_path.as_ref());
    let mounts = c.volume_mounts.as_deref().unwrap_or(&[]);
    let fuse = mounts.iter().any(|m| {
        m.mount_path == "/dev/fuse"
            && host(&m.name)
                .is_some_and(|h| h.path == "/dev/fuse" && h.type_.as_deref() == Some("CharDevice"))
    });
    if !fuse {
        p.push("the node plugin does not mount the host's /dev/fuse".into());
    }
    let kubelet = mounts.iter().any(|m| {
        m.mount_propagation.as_deref() == Some("Bidirectional")
            && host(&m.name).is_some_and(|h| h.path == "/var/lib/kubelet")
            && m.mount_path == "/var/lib/kubelet"
    });
    if !kubelet {
        p.push("the node plugin does not share /var/lib/kubelet Bidirectionally".into());
    }
    let socket = flag(args(c), "--endpoint").and_then(|e| e.strip_prefix("unix://"));
    let on_host = socket
        .and_then(|s| on_volume(c, s))
        .and_then(|(v, rest)| Some(format!("{}{rest}", host(v)?.path.trim_end_matches('/'))));
    let want = format!("/var/lib/kubelet/plugins/{DRIVER_NAME}/csi.sock");
    if on_host.as_deref() != Some(want.as_str()) {
        p.push(format!(
            "the node plugin's socket on the host is {on_host:?}, not {want}"
        ));
    }
    let registrar = theirs.iter().find(|c| c.name == "node-driver-registrar");
    let registered = registrar.and_then(|r| flag(args(r), "--kubelet-registration-path"));
    if registered != on_host.as_deref() {
        p.push(format!(
            "the registrar registers {registered:?}, the socket is at {on_host:?}"
        ));
    }
}

/// Names the objects give each other: service accounts, roles, namespaces, claims.
fn names(s: &Set, p: &mut Problems) {
    let namespaces: BTreeSet<&str> = s.namespaces.iter().map(|n| name(&n.metadata)).collect();
    let accounts: BTreeSet<(&str, &str)> = s
        .accounts
        .iter()
        .map(|a| (ns(&a.metadata), name(&a.metadata)))
        .collect();
    let mut pods: Vec<(&ObjectMeta, &PodSpec)> = Vec::new();
    for d in &s.deployments {
        pods.extend(
            d.spec
                .as_ref()
                .and_then(|x| pod(&x.template))
                .map(|x| (&d.metadata, x)),
        );
    }
    for d in &s.daemonsets {
        pods.extend(
            d.spec
                .as_ref()
                .and_then(|x| pod(&x.template))
                .map(|x| (&d.metadata, x)),
        );
    }
    for (m, spec) in pods {
        if let Some(sa) = &spec.service_account_name {
            if !accounts.contains(&(ns(m), sa.as_str())) {
                p.push(format!("{}: no ServiceAccount {sa} in {}", name(m), ns(m)));
            }
        }
    }
    let subjects = |subs: &Option<Vec<Subject>>, what: &str, p: &mut Problems| {
        for sub in subs.as_deref().unwrap_or(&[]) {
            let key = (sub.namespace.as_deref().unwrap_or(""), sub.name.as_str());
            if sub.kind == "ServiceAccount" && !accounts.contains(&key) {
                p.push(format!("{what}: no ServiceAccount {key:?}"));
            }
        }
    };
    for b in &s.cluster_bindings {
        subjects(&b.subjects, name(&b.metadata), p);
        if !s
            .cluster_roles
            .iter()
            .any(|r| name(&r.metadata) == b.role_ref.name)
        {
            p.push(format!(
                "{}: no ClusterRole {}",
                name(&b.metadata),
                b.role_ref.name
            ));
        }
    }
    for b in &s.bindings {
        subjects(&b.subjects, name(&b.metadata), p);
        let role = s
            .roles
            .iter()
            .any(|r| name(&r.metadata) == b.role_ref.name && ns(&r.metadata) == ns(&b.metadata));
        if !role {
            p.push(format!(
                "{}: no Role {}",
                name(&b.metadata),
                b.role_ref.name
            ));
        }
    }
    let mut spaced: Vec<&ObjectMeta> = s.accounts.iter().map(|x| &x.metadata).collect();
    spaced.extend(s.services.iter().map(|x| &x.metadata));
    spaced.extend(s.statefulsets.iter().map(|x| &x.metadata));
    spaced.extend(s.deployments.iter().map(|x| &x.metadata));
    spaced.extend(s.daemonsets.iter().map(|x| &x.metadata));
    spaced.extend(s.roles.iter().map(|x| &x.metadata));
    spaced.extend(s.bindings.iter().map(|x| &x.metadata));
    for m in spaced {
        if !namespaces.contains(ns(m)) {
            p.push(format!("{}: namespace {} is not made here", name(m), ns(m)));
        }
    }
}

/// Every check of the driver's manifests (deploy/kubernetes/).
pub fn check(s: &Set) -> Problems {
    let mut p = Problems::new();
    match s.drivers.as_slice() {
        [d] if name(&d.metadata) == DRIVER_NAME => {}
        _ => p.push(format!("not one CSIDriver named {DRIVER_NAME}")),
    }
    let (address, secret) = server(s, &mut p);
    classes(s, address.as_deref(), secret.as_deref(), &mut p);
    controller(s, address.as_deref(), secret.as_deref(), &mut p);
    node(s, &mut p);
    names(s, &mut p);
    p
}

/// The example (deploy/kubernetes/example/) against the driver's manifests: its claim of a
/// class they make, of that class's mode, shared by a Deployment's replicas.
pub fn check_example(driver: &Set, example: &Set) -> Problems {
    let mut p = Problems::new();
    let modes: BTreeMap<&str, String> = driver
        .classes
        .iter()
        .filter_map(|c| {
            Some((
                name(&c.metadata),
                c.parameters.as_ref()?.get(ACCESS_MODE_PARAM)?.clone(),
            ))
        })
        .collect();
    for c in &example.claims {
        let spec = c.spec.as_ref().expect("a claim has a spec");
        let class = spec.storage_class_name.as_deref().unwrap_or("");
        let asked = spec.access_modes.clone().unwrap_or_default();
        let fits = modes
            .get(class)
            .and_then(|m| m.parse::<AccessMode>().ok())
            .is_some_and(|m| asked.len() == 1 && asked[0].parse::<AccessMode>() == Ok(m));
        if !fits {
            p.push(format!(
                "claim {}: {asked:?} of class {class:?}, which is {:?}",
                name(&c.metadata),
                modes.get(class)
            ));
        }
    }
    for d in &example.deployments {
        let spec = d.spec.as_ref().expect("a Deployment has a spec");
        let claims: Vec<&str> = pod(&spec.template)
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|v| Some(v.persistent_volume_claim.as_ref()?.claim_name.as_str()))
            .collect();
        let known = claims.iter().all(|c| {
            example
                .claims
                .iter()
                .any(|x| name(&x.metadata) == *c && ns(&x.metadata) == ns(&d.metadata))
        });
        if claims.is_empty() || !known || spec.replicas.unwrap_or(1) < 2 {
            p.push(format!(
                "{}: not several replicas sharing the example's claim",
                name(&d.metadata)
            ));
        }
    }
    p
}
