//! Who may mount this volume, and how: the export's access mode (as Kubernetes defines them),
//! read-only exports, client address ranges, the shared token, root squash. Decisions only;
//! the connection handler asks and carries them out.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::session::Session;

pub use protocol::AccessMode;

/// The uid and gid root is squashed to (nobody, nogroup).
pub const NOBODY: u32 = 65534;

/// What the server serves and to whom: the access mode, read-only or not, the addresses
/// allowed, root squashing and the token.
#[derive(Debug, Clone)]
pub struct Export {
    /// How many mounts, on how many nodes, may write (Kubernetes' access modes).
    pub mode: AccessMode,
    /// Every mount read-only, whatever it asks.
    pub read_only: bool,
    /// Client addresses allowed to connect; empty means any.
    pub allow: Vec<IpNet>,
    /// uid and gid 0 from clients become nobody and nogroup (`permissions::Caller`).
    pub root_squash: bool,
    /// The shared secret clients must prove, if any.
    pub token: Option<Vec<u8>>,
}

impl Default for Export {
    fn default() -> Export {
        Export {
            mode: AccessMode::Rwx,
            read_only: false,
            allow: Vec::new(),
            root_squash: true,
            token: None,
        }
    }
}

/// What a new mount gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// In, read-only or not.
    Admit {
        /// The mount only reads: asked so, or the export or the access mode says so.
        read_only: bool,
    },
    /// Refused, with the reason the user sees.
    Refuse(String),
    /// Not yet: the reason, shown while it waits.
    Wait(String),
}

impl Export {
    /// May a client at `addr` connect at all?
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&addr))
    }

    /// Admit a mount of `node` (asking for read-only or not) of the whole volume, given the
    /// sessions that hold it now, attached or waiting out their lease.
    pub fn admit<'a>(
        &self,
        node: &str,
        wants_read_only: bool,
        sessions: impl Iterator<Item = &'a Session>,
    ) -> Admission {
        let read_only = wants_read_only || self.read_only;
        admit(self.mode, "the volume", node, read_only, sessions)
    }
}

/// Admit a mount of `node` (asking for read-only or not) of `what` (the volume, or an
/// export) of access mode `mode`, given the sessions that hold it now.
pub fn admit<'a>(
    mode: AccessMode,
    what: &str,
    node: &str,
    wants_read_only: bool,
    sessions: impl Iterator<Item = &'a Session>,
) -> Admission {
    let read_only = wants_read_only || mode == AccessMode::Rox;
    match mode {
        AccessMode::Rwx | AccessMode::Rox => Admission::Admit { read_only },
        AccessMode::Rwo => {
            let mut holders = sessions.filter(|s| s.info.node_id != node);
            match holders.next() {
                Some(s) => Admission::Refuse(format!(
                    "{what} is ReadWriteOnce and node {} holds it",
                    s.info.node_id
                )),
                None => Admission::Admit { read_only },
            }
        }
        AccessMode::Rwop => {
            let mut holders = sessions;
            match holders.next() {
                Some(s) => Admission::Wait(format!(
                    "{what} is ReadWriteOncePod and is mounted on node {}",
                    s.info.node_id
                )),
                None => Admission::Admit { read_only },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionInfo;
    use locks::SessionId;

    fn session(node: &str) -> std::sync::Arc<Session> {
        Session::new(
            SessionId::new(1),
            SessionInfo {
                node_id: node.into(),
                mount_id: 1,
                read_only: false,
                started: std::time::Instant::now(),
                secret: Default::default(),
                export: 0,
            },
        )
    }

    #[test]
    fn access_modes() {
        let a = session("a");
        let held = [a.as_ref()];
        let e = |mode| Export {
            mode,
            ..Export::default()
        };
        assert_eq!(
            e(AccessMode::Rwx).admit("b", false, held.into_iter()),
            Admission::Admit { read_only: false }
        );
        assert_eq!(
            e(AccessMode::Rox).admit("b", false, held.into_iter()),
            Admission::Admit { read_only: true }
        );
        assert_eq!(
            e(AccessMode::Rwo).admit("a", false, held.into_iter()),
            Admission::Admit { read_only: false }
        );
        assert!(matches!(
            e(AccessMode::Rwo).admit("b", false, held.into_iter()),
            Admission::Refuse(r) if r.contains("node a")
        ));
        assert!(matches!(
            e(AccessMode::Rwop).admit("a", false, held.into_iter()),
            Admission::Wait(r) if r.contains("node a")
        ));
        assert_eq!(
            e(AccessMode::Rwop).admit("a", false, [].into_iter()),
            Admission::Admit { read_only: false }
        );
    }

    #[test]
    fn allow_lists_and_modes_parse() {
        let e = Export {
            allow: vec!["10.1.0.0/16".parse().unwrap()],
            ..Export::default()
        };
        assert!(e.allows("10.1.2.3".parse().unwrap()));
        assert!(e.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!e.allows("10.2.0.1".parse().unwrap()));
        assert!(Export::default().allows("192.0.2.1".parse().unwrap()));
        assert_eq!("RWOP".parse::<AccessMode>(), Ok(AccessMode::Rwop));
        assert!("rw".parse::<AccessMode>().unwrap_err().contains("expected"));
    }
}
