//! A host's TCP segments to some ports of another host dropped for as long as a guard lives:
//! an iptables rule in the host's network namespace (`crate::lan`), so nothing outside it is
//! touched. TCP retransmits what was dropped once the rule is gone: what the host sent
//! meanwhile arrives late, as over a network that stalled, not never. `queued` says how many
//! bytes the host's connections to those ports have sent and not had acknowledged, so a
//! test can wait until a message is on its way before it acts.

use crate::run::{command, ok};

/// The rule dropping segments from a host to `dest` at `ports`, removed when dropped.
pub struct Dropped {
    prefix: Vec<String>,
    spec: Vec<String>,
}

impl Dropped {
    /// Drop every TCP segment sent through `prefix` (`ip netns exec NS`, a host of a `Lan`)
    /// to `dest` at `ports` (`FIRST:LAST`).
    pub fn new(prefix: &[&str], dest: &str, ports: &str) -> Dropped {
        let spec = [
            "OUTPUT", "-p", "tcp", "-d", dest, "--dport", ports, "-j", "DROP",
        ];
        let d = Dropped {
            prefix: prefix.iter().map(|p| p.to_string()).collect(),
            spec: spec.iter().map(|s| s.to_string()).collect(),
        };
        ok(d.iptables("-A"));
        d
    }

    fn iptables(&self, op: &str) -> std::process::Output {
        command(&self.prefix, "iptables")
            .arg(op)
            .args(&self.spec)
            .output()
            .expect("iptables runs")
    }

    /// Bytes sent through `prefix` on established connections to `dest` at ports `first` to
    /// `last` and not acknowledged yet (ss's Send-Q), summed.
    pub fn queued(prefix: &[&str], dest: &str, first: u16, last: u16) -> u64 {
        let out = ok(command(prefix, "ss")
            .args(["-Htn"])
            .output()
            .expect("ss runs"));
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (state, send_q, peer) = (f.first()?, f.get(2)?, f.get(4)?);
                let (ip, port) = peer.rsplit_once(':')?;
                let port: u16 = port.parse().ok()?;
                let to = *state == "ESTAB" && ip == dest && (first..=last).contains(&port);
                to.then(|| send_q.parse::<u64>().ok()).flatten()
            })
            .sum()
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        let out = self.iptables("-D");
        if !out.status.success() {
            eprintln!(
                "dropped: the rule could not be removed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
