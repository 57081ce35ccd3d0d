//! Hosts played by network namespaces: one server namespace and client namespaces, each client
//! linked to the server by a veth pair of its own (10.231.N.2 ↔ 10.231.N.1). Every namespace
//! this makes is deleted when it drops, even when the test fails.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static MADE: AtomicUsize = AtomicUsize::new(0);

/// A tag no other set of namespaces made by this machine's running tests has: this process's
/// id and a count of the sets it made (shared with `lan`, so their names never meet).
pub(crate) fn tag() -> String {
    format!(
        "{}{}",
        std::process::id() % 100_000,
        MADE.fetch_add(1, Ordering::SeqCst)
    )
}

/// Network namespaces for a server and its clients, each its own host.
pub struct Hosts {
    /// The server's namespace.
    pub server: String,
    /// Each client's namespace.
    pub clients: Vec<String>,
    /// Each client's end of its veth pair.
    devs: Vec<String>,
}

/// Runs `ip ARGS`, its failure an error that names the command and says why.
pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    /// A server namespace and `n` client namespaces (n ≤ 200), each client wired to it.
    pub fn star(n: usize) -> Result<Hosts, String> {
        let tag = tag();
        let mut hosts = Hosts {
            server: format!("rwxfs-{tag}-srv"),
            clients: Vec::new(),
            devs: Vec::new(),
        };
        ip(&["netns", "add", &hosts.server])?;
        ip(&["-n", &hosts.server, "link", "set", "lo", "up"])?;
        for i in 1..=n {
            let ns = format!("rwxfs-{tag}-c{i}");
            ip(&["netns", "add", &ns])?;
            hosts.clients.push(ns.clone());
            let (a, b) = (format!("rw{tag}s{i}"), format!("rw{tag}c{i}"));
            hosts.devs.push(b.clone());
            ip(&[
                "link",
                "add",
                &a,
                "netns",
                &hosts.server,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &ns,
            ])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &hosts.server,
                "addr",
                "add",
                &format!("10.231.{i}.1/24"),
                "dev",
                &a,
            ])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.231.{i}.2/24"),
                "dev",
                &b,
            ])?;
            ip(&["-n", &hosts.server, "link", "set", &a, "up"])?;
            ip(&["-n", &ns, "link", "set", &b, "up"])?;
        }
        Ok(hosts)
    }

    /// The server's address as client `i` (from 1) reaches it.
    pub fn server_ip_for(&self, i: usize) -> String {
        format!("10.231.{i}.1")
    }

    /// Run a program in namespace `ns`: `ip netns exec NS` execs it, keeping its pid.
    pub fn exec(ns: &str) -> [&str; 4] {
        ["ip", "netns", "exec", ns]
    }

    /// Take client `i`'s link down or up (a network cut).
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), String> {
        let (ns, dev) = (&self.clients[i - 1], &self.devs[i - 1]);
        ip(&["-n", ns, "link", "set", dev, if up { "up" } else { "down" }])
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of each veth pair, and with it the pair.
        for ns in self.clients.iter().chain(std::iter::once(&self.server)) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
