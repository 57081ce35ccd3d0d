//! Each YAML document against the Kubernetes API's own types (k8s-openapi, API 1.33): parsed
//! into its typed object and serialized back. The typed form keeps only the fields the API
//! has, where the API has them, so anything unknown or misplaced is missing from the round
//! trip, and a difference from the original names it. A required field missing comes back
//! defaulted (so it shows too), and a value of the wrong type fails the parse.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One manifest object in its typed form.
pub enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    Service(Service),
    PersistentVolumeClaim(PersistentVolumeClaim),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    CSIDriver(CSIDriver),
    StorageClass(StorageClass),
}

/// Every YAML document of `text` as a JSON value (empty documents left out).
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| format!("not YAML: {e}"))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// Where `want` and `got` differ: one line per path (`.spec.x[0].y`).
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k}: not a field of the API here")),
                }
            }
            // What the typed form adds is a required field it defaulted, or the kind it
            // names an object embedded in another by (a StatefulSet's claim templates).
            let named = |k: &str| k == "apiVersion" || k == "kind";
            for k in b.keys().filter(|k| !a.contains_key(*k) && !named(k)) {
                out.push(format!("{path}.{k}: required by the API and missing"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if want == got => {}
        _ => out.push(format!("{path}: {want} became {got}")),
    }
}

/// `v` through `T` and back: `T` if nothing was lost or changed on the way.
fn typed<T: Resource + DeserializeOwned + Serialize>(v: &Value) -> Result<T, String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| format!("{}: {e}", T::KIND))?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    diff("", v, &back, &mut out);
    match out.is_empty() {
        true => Ok(t),
        false => Err(format!("{}: {}", T::KIND, out.join("; "))),
    }
}

/// The typed object a document is, if it is a valid one of the kinds deploy/ uses.
pub fn object(v: &Value) -> Result<Object, String> {
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    macro_rules! kinds {
        ($($t:ident),*) => {
            $(if api == $t::API_VERSION && kind == $t::KIND {
                return typed::<$t>(v).map(Object::$t);
            })*
        };
    }
    kinds!(
        Namespace,
        ServiceAccount,
        Service,
        PersistentVolumeClaim,
        StatefulSet,
        Deployment,
        DaemonSet,
        ClusterRole,
        ClusterRoleBinding,
        Role,
        RoleBinding,
        CSIDriver,
        StorageClass
    );
    Err(format!(
        "{api}/{kind}: not a kind of object deploy/kubernetes uses"
    ))
}
