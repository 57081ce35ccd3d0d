//! Hosts on one network segment, each a network namespace: a hub namespace holds a bridge
//! (10.232.0.1, where a Ceph cluster can live) and every host is linked to it by a veth pair
//! of its own (10.232.0.N+1), so any host reaches any other and the cluster. Taking a host's
//! link down cuts that host off from all of them at once: a network partition. Every
//! namespace this makes is deleted when it drops, even when the test fails.

use crate::netns::{ip, tag};

/// A hub with a bridge and hosts on it.
pub struct Lan {
    /// The hub's namespace (the bridge, and whatever runs at `hub_ip`).
    pub hub: String,
    /// Each host's namespace.
    pub hosts: Vec<String>,
    /// Each host's end of its veth pair.
    devs: Vec<String>,
}

impl Lan {
    /// A hub and `n` hosts (n ≤ 200) on its bridge.
    pub fn new(n: usize) -> Result<Lan, String> {
        let tag = tag();
        let mut lan = Lan {
            hub: format!("rwxfs-{tag}-hub"),
            hosts: Vec::new(),
            devs: Vec::new(),
        };
        let hub = lan.hub.clone();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "addr", "add", "10.232.0.1/24", "dev", "br0"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 1..=n {
            let ns = format!("rwxfs-{tag}-h{i}");
            ip(&["netns", "add", &ns])?;
            lan.hosts.push(ns.clone());
            let (port, dev) = (format!("rw{tag}p{i}"), format!("rw{tag}h{i}"));
            lan.devs.push(dev.clone());
            let (port, dev) = (port.as_str(), dev.as_str());
            ip(&[
                "link", "add", port, "netns", &hub, "type", "veth", "peer", "name", dev, "netns",
                &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let addr = format!("{}/24", lan.ip(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", dev])?;
            ip(&["-n", &ns, "link", "set", dev, "up"])?;
        }
        Ok(lan)
    }

    /// The hub's address on the bridge.
    pub fn hub_ip(&self) -> String {
        "10.232.0.1".into()
    }

    /// Host `i`'s address (from 1).
    pub fn ip(&self, i: usize) -> String {
        format!("10.232.0.{}", i + 1)
    }

    /// The prefix that runs a program on host `i` (from 1): `ip netns exec NS`, which execs
    /// it, keeping its pid.
    pub fn on(&self, i: usize) -> [&str; 4] {
        ["ip", "netns", "exec", &self.hosts[i - 1]]
    }

    /// The prefix that runs a program in the hub.
    pub fn on_hub(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.hub]
    }

    /// Cut host `i` off from every other (its link down), or bring it back.
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), String> {
        let (ns, dev) = (&self.hosts[i - 1], &self.devs[i - 1]);
        ip(&["-n", ns, "link", "set", dev, if up { "up" } else { "down" }])
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of each veth pair, and with it the pair.
        for ns in self.hosts.iter().chain(std::iter::once(&self.hub)) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
