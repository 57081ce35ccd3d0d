//! `rwxfs status HOST:PORT`: the server's sessions, as a table or JSON (an array of
//! sessions); a standby says so (JSON: `{"role": "standby", "active": WHO}`).

use std::path::Path;

use client_fuse::link::ServerStatus;

pub fn run(server: &str, token_file: Option<&Path>, tls_ca: Option<&Path>, json: bool) -> i32 {
    let tls = match tls_ca
        .map(client_fuse::transport::client_config)
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rwxfs status: {e}");
            return 1;
        }
    };
    let token = match token_file.map(super::mount_cmd::read_token).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rwxfs status: {e}");
            return 1;
        }
    };
    let list = match client_fuse::link::query_status(server, token.as_deref(), tls.as_ref()) {
        Ok(ServerStatus::Active(l)) => l,
        Ok(ServerStatus::Standby(active)) => return standby(&active, json),
        Err(e) => {
            eprintln!("rwxfs status: {e}");
            return 1;
        }
    };
    if json {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|s| {
                serde_json::json!({
                    "session": s.session,
                    "node": s.node_id,
                    "mount": format!("{:016x}", s.mount_id),
                    "access": if s.read_only { "ro" } else { "rw" },
                    "address": s.addr,
                    "last_heard_ms": s.last_heard_ms,
                    "connected": s.connected,
                    "open_files": s.open_files,
                    "locks": s.locks,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return 0;
    }
    println!(
        "{:<20} {:<32} {:<16} {:<6} {:<22} {:>10} {:>6} {:>6}",
        "session", "node", "mount", "access", "address", "heard", "open", "locks"
    );
    for s in &list {
        let heard = if s.connected {
            format!("{:.1}s ago", s.last_heard_ms as f64 / 1000.0)
        } else {
            format!("lost {:.0}s", s.last_heard_ms as f64 / 1000.0)
        };
        println!(
            "{:<20} {:<32} {:016x} {:<6} {:<22} {:>10} {:>6} {:>6}",
            s.session,
            s.node_id,
            s.mount_id,
            if s.read_only { "ro" } else { "rw" },
            s.addr,
            heard,
            s.open_files,
            s.locks
        );
    }
    0
}

/// A standby's status: what it is, and who it says serves the volume.
fn standby(active: &str, json: bool) -> i32 {
    if json {
        println!(
            "{}",
            serde_json::json!({ "role": "standby", "active": active })
        );
    } else {
        println!("standby: the volume is served by {active}");
    }
    0
}
