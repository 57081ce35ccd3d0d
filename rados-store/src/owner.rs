//! Who serves a RADOS volume: one server at a time holds the exclusive lock `rwxfs.owner` on
//! the image's header object, with a lease it renews well inside it. A server that finds the
//! lock held is a standby; when the holder's lease runs out, it takes the lock, then fences
//! the previous owner (the OSD blocklist, by the address that owner recorded in the header's
//! `rwxfs.owner` attribute) before it reads or writes one block, then records itself there.
//! A clean stop clears the attribute and lets go of the lock: the next owner fences nobody.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{Cluster, Pool};
use crate::name::ImageName;
use crate::objects::{LockSpec, Locked};

/// The lock's name on the header object, and the attribute naming the last owner's address.
pub const OWNER_LOCK: &str = "rwxfs.owner";
/// The attribute with the last owner's description (host, listen address).
const ABOUT: &str = "rwxfs.about";
/// How long a fenced owner stays refused: far longer than any pause it could wake from.
pub const FENCE_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// This server's claim on a volume's ownership.
pub struct Owner {
    pool: Pool,
    header: String,
    lock: LockSpec,
    lease: Duration,
    addr: String,
}

/// What trying to take the volume came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This server owns the volume now; `fenced` is the previous owner's address, which the
    /// cluster now refuses, if there was one that had not stopped cleanly.
    Taken {
        /// The address blocklisted, if any.
        fenced: Option<String>,
    },
    /// Another server owns it, as it describes itself (empty if it could not be read).
    Held(String),
}

/// What renewing the lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Still the owner, for another lease from when the renewal was sent.
    Kept,
    /// Another server took the volume (or this one was fenced): stop serving.
    Lost(String),
}

impl Owner {
    /// A claim on `name` through `cluster`, with leases of `lease`; `about` (host, listen
    /// address) is shown to standbys and to `rwxfs status` on them.
    pub fn new(
        cluster: &Arc<Cluster>,
        name: &ImageName,
        lease: Duration,
        about: &str,
    ) -> Result<Owner, crate::RadosError> {
        let pool = cluster.pool(&name.pool)?;
        let io = |e| crate::RadosError::Io(name.to_string(), e);
        let addr = cluster.addr().map_err(io)?;
        Ok(Owner {
            pool,
            header: name.header_object(),
            lock: LockSpec {
                name: OWNER_LOCK.into(),
                cookie: new_cookie().map_err(io)?,
                description: format!("{about}, Ceph client {addr}"),
            },
            lease,
            addr,
        })
    }

    /// This server's Ceph client address (what a successor fences).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The lease each renewal buys.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Take the volume if no one holds it: the lock, then the previous owner fenced, then
    /// this server recorded as the owner. Nothing of the volume is read before it returns.
    pub fn try_take(&self) -> io::Result<Claim> {
        if self
            .pool
            .lock_exclusive(&self.header, &self.lock, self.lease, false)?
            == Locked::Busy
        {
            return Ok(Claim::Held(self.holder()));
        }
        let before = self.pool.get_xattr(&self.header, OWNER_LOCK)?;
        let before = before.map(|b| String::from_utf8_lossy(&b).into_owned());
        let fenced = match before.filter(|b| !b.is_empty() && *b != self.addr) {
            Some(prev) => {
                self.pool.cluster().blocklist(&prev, FENCE_FOR)?;
                Some(prev)
            }
            None => None,
        };
        self.pool
            .set_xattr(&self.header, OWNER_LOCK, self.addr.as_bytes())?;
        self.pool
            .set_xattr(&self.header, ABOUT, self.lock.description.as_bytes())?;
        Ok(Claim::Taken { fenced })
    }

    /// Extend the lease. A lease that lapsed with no one taking the volume is taken again
    /// (no one else wrote: a successor fences before it writes, and this server's own calls
    /// would then be refused). Errors other than losing the lock are the caller's to retry
    /// while its lease lasts.
    pub fn renew(&self) -> io::Result<Renewal> {
        match self
            .pool
            .lock_exclusive(&self.header, &self.lock, self.lease, true)
        {
            Ok(Locked::Taken) => Ok(Renewal::Kept),
            Ok(Locked::Busy) => Ok(Renewal::Lost(self.holder())),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.retake(),
            Err(e) if fenced(&e) => Ok(Renewal::Lost(format!("this server was fenced ({e})"))),
            Err(e) => Err(e),
        }
    }

    fn retake(&self) -> io::Result<Renewal> {
        if self
            .pool
            .lock_exclusive(&self.header, &self.lock, self.lease, false)?
            == Locked::Busy
        {
            return Ok(Renewal::Lost(self.holder()));
        }
        let owner = self.pool.get_xattr(&self.header, OWNER_LOCK)?;
        if owner.as_deref() != Some(self.addr.as_bytes()) {
            let _ = self.pool.unlock(&self.header, &self.lock);
            return Ok(Renewal::Lost(
                "another server owned the volume meanwhile".into(),
            ));
        }
        tracing::warn!("the volume's lease had lapsed with no one taking over: taken again");
        Ok(Renewal::Kept)
    }

    /// A clean stop: the next owner needs to fence no one.
    pub fn release(&self) -> io::Result<()> {
        self.pool.set_xattr(&self.header, OWNER_LOCK, b"")?;
        self.pool.unlock(&self.header, &self.lock)
    }

    /// Who holds the lock, as it describes itself.
    pub fn holder(&self) -> String {
        holder_of(&self.pool, &self.header)
    }
}

/// A cookie for a lock of this process's own: 16 random hex digits.
pub(crate) fn new_cookie() -> io::Result<String> {
    let mut cookie = [0u8; 8];
    getrandom::getrandom(&mut cookie).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(cookie.iter().map(|b| format!("{b:02x}")).collect())
}

/// Who holds the owner lock on `header`, in words: the server recorded as the owner, as it
/// describes itself, when the lock is that server's; else a tool's hold (`crate::Hold`) or a
/// server between taking the lock and recording itself.
pub(crate) fn holder_of(pool: &Pool, header: &str) -> String {
    let lockers = match pool.lockers(header, OWNER_LOCK) {
        Ok(l) => l,
        Err(e) => return format!("unknown ({e})"),
    };
    let Some(l) = lockers.first() else {
        return "no server (its lease is over)".into();
    };
    let owner = match pool.get_xattr(header, OWNER_LOCK) {
        Ok(Some(a)) => String::from_utf8_lossy(&a).into_owned(),
        Ok(None) => String::new(),
        Err(e) => return format!("another server ({e})"),
    };
    if owner.is_empty() || !(l.addr.ends_with(&owner) || owner.ends_with(&l.addr)) {
        return format!(
            "an rwxfs fsck or mkfs, or a server taking the volume over (Ceph client {})",
            l.addr
        );
    }
    match pool.get_xattr(header, ABOUT) {
        Ok(Some(about)) => String::from_utf8_lossy(&about).into_owned(),
        Ok(None) => "another server".into(),
        Err(e) => format!("another server ({e})"),
    }
}

/// True for the errors of a client the cluster blocklisted (EBLOCKLISTED is ESHUTDOWN).
pub fn fenced(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ESHUTDOWN)
}
