//! A hold on a volume by a tool that reads or rewrites it whole (`rwxfs fsck`, `rwxfs mkfs`):
//! the owner lock (`rwxfs.owner` on `NAME.header`), under a cookie of its own and described as
//! that tool. A volume a live server owns is refused (the server's lease holds the lock), and
//! no server takes the volume while the tool runs: a server started meanwhile stands by, as
//! for another server. Renewed while held, let go when dropped; a tool killed meanwhile leaves
//! it to lapse after `HOLD_LEASE`. A hold fences no one and records no owner, so a tool whose
//! renewals fail must stop writing before its lease may have run out (a standby may take the
//! volume then): `ensure`, and `guard`, a store that checks before every write and flush.

mod lease;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use volume::BlockStore;

use crate::cluster::{Cluster, Pool};
use crate::name::ImageName;
use crate::objects::{LockSpec, Locked};
use crate::owner::{holder_of, new_cookie, OWNER_LOCK};
use crate::RadosError;
use lease::{Renewing, Watch};

/// How long a hold lasts without a renewal (it is renewed every third of it).
pub const HOLD_LEASE: Duration = Duration::from_secs(10);

/// A tool's hold on a volume; let go when dropped.
pub struct Hold {
    pool: Arc<Pool>,
    header: String,
    lock: LockSpec,
    name: String,
    renewing: Renewing,
}

impl Hold {
    /// Hold `name` for the tool `about` describes (`rwxfs fsck, pid 123 on host1`); `Ok(Err)`
    /// with who holds it, in words, if a server (or another tool) does. Taking the lock makes
    /// the header object if there is none: call it on an image known to exist, or one that
    /// is being made.
    pub fn take(
        cluster: &Arc<Cluster>,
        name: &ImageName,
        about: &str,
    ) -> Result<Result<Hold, String>, RadosError> {
        let io = |e| RadosError::Io(name.to_string(), e);
        let pool = Arc::new(cluster.pool(&name.pool)?);
        let header = name.header_object();
        let lock = LockSpec {
            name: OWNER_LOCK.into(),
            cookie: new_cookie().map_err(io)?,
            description: about.into(),
        };
        let sent = Instant::now();
        if pool
            .lock_exclusive(&header, &lock, HOLD_LEASE, false)
            .map_err(io)?
            == Locked::Busy
        {
            return Ok(Err(holder_of(&pool, &header)));
        }
        let (p, h, l) = (pool.clone(), header.clone(), lock.clone());
        let shown = header.clone();
        let renewing = Renewing::start(
            sent,
            HOLD_LEASE,
            move || p.lock_exclusive(&h, &l, HOLD_LEASE, true),
            move |e| tracing::warn!("{shown}: the hold on the volume was not renewed: {e}"),
        );
        Ok(Ok(Hold {
            pool,
            header,
            lock,
            name: name.to_string(),
            renewing,
        }))
    }

    /// `Ok` while the hold surely lasts a while yet (a fifth of `HOLD_LEASE`); otherwise an
    /// error saying why the hold may have lapsed. A tool checks this before a step that
    /// writes the volume, and stops if it fails.
    pub fn ensure(&self) -> io::Result<()> {
        check(&self.renewing.watch(), None)
    }

    /// Why the hold may have lapsed (`hold on the volume may have lapsed: ...`), if it may.
    pub fn lapsed(&self) -> Option<String> {
        self.renewing.watch().ensure().err()
    }

    /// `store` (this volume's), refusing every write and flush once the hold may have
    /// lapsed, before it reaches the store (`ensure`).
    pub fn guard<S: BlockStore>(&self, store: S) -> Held<S> {
        Held {
            inner: store,
            watch: self.renewing.watch(),
            name: self.name.clone(),
        }
    }

    /// Let go now, reporting a failure (dropping lets go too, silently).
    pub fn release(mut self) -> io::Result<()> {
        self.renewing.stop();
        self.pool.unlock(&self.header, &self.lock)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.renewing.stop() {
            let _ = self.pool.unlock(&self.header, &self.lock);
        }
    }
}

/// `Watch::ensure` as an error of the store named `name`, if any.
fn check(watch: &Watch, name: Option<&str>) -> io::Result<()> {
    watch.ensure().map_err(|why| {
        let name = name.map(|n| format!("{n}: ")).unwrap_or_default();
        io::Error::other(format!(
            "{name}the tool's {why}; stopped before writing to it (a server may have taken it)"
        ))
    })
}

/// A volume's store written only while its tool's hold surely lasts (`Hold::guard`).
pub struct Held<S: BlockStore> {
    inner: S,
    watch: Watch,
    name: String,
}

impl<S: BlockStore> BlockStore for Held<S> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check(&self.watch, Some(&self.name))?;
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        check(&self.watch, Some(&self.name))?;
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        check(&self.watch, Some(&self.name))?;
        self.inner.reserve(offset, len)
    }
    fn applied(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.applied(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volume::MemStore;

    /// A hold whose renewals all fail: once its lease may have run out, writes and flushes
    /// through its guard are refused, naming the volume and the renewal's error, and reach
    /// nothing.
    #[test]
    fn writes_stop_once_a_hold_whose_renewals_fail_may_have_lapsed() {
        let lease = Duration::from_millis(300);
        let renewing = Renewing::start(
            Instant::now(),
            lease,
            || Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)),
            |_| {},
        );
        let store = Held {
            inner: MemStore::new(1 << 20),
            watch: renewing.watch(),
            name: "rados://p/v".into(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let refused = loop {
            match check(&store.watch, Some(&store.name)) {
                Err(e) => break e.to_string(),
                Ok(()) if Instant::now() < deadline => std::thread::sleep(lease / 10),
                Ok(()) => panic!("the hold still counts as held 30 s on"),
            }
        };
        assert!(
            refused.starts_with("rados://p/v: ")
                && refused.contains("renewing it failed")
                && refused.contains("timed out")
                && refused.contains("stopped before writing"),
            "{refused}"
        );
        let e = store.write_at(&[1u8; 4096], 8192).unwrap_err();
        assert_eq!(e.to_string(), refused);
        assert!(store.flush().is_err());
        assert!(store.reserve(0, 4096).is_err());
        let mut back = vec![9u8; 4096];
        store.read_at(&mut back, 8192).unwrap();
        assert!(
            back.iter().all(|&b| b == 0),
            "the refused write reached the store"
        );
    }

    /// A renewal that finds the lock held by another stops the renewals and the writes at
    /// once, lease or no lease.
    #[test]
    fn a_hold_taken_by_another_stops_writes_at_once() {
        let renewals = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = renewals.clone();
        let mut renewing = Renewing::start(
            Instant::now(),
            Duration::from_millis(300),
            move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(Locked::Busy)
            },
            |_| {},
        );
        let watch = renewing.watch();
        let deadline = Instant::now() + Duration::from_secs(30);
        while watch.ensure().is_ok() {
            assert!(Instant::now() < deadline, "never lost");
            std::thread::sleep(Duration::from_millis(10));
        }
        let e = watch.ensure().unwrap_err();
        assert!(e.contains("another client holds the owner lock"), "{e}");
        // The thread ended by itself after that one renewal.
        assert!(renewing.stop());
        assert_eq!(renewals.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
