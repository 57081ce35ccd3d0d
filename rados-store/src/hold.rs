//! A hold on a volume by a tool that reads or rewrites it whole (`rwxfs fsck`, `rwxfs mkfs`):
//! the owner lock (`rwxfs.owner` on `NAME.header`), under a cookie of its own and described as
//! that tool. A volume a live server owns is refused (the server's lease holds the lock), and
//! no server takes the volume while the tool runs: a server started meanwhile stands by, as
//! for another server. Renewed while held, let go when dropped; a tool killed meanwhile leaves
//! it to lapse after `HOLD_LEASE`. A hold fences no one and records no owner.

use std::io;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cluster::{Cluster, Pool};
use crate::name::ImageName;
use crate::objects::{LockSpec, Locked};
use crate::owner::{holder_of, new_cookie, OWNER_LOCK};
use crate::RadosError;

/// How long a hold lasts without a renewal (it is renewed every third of it).
pub const HOLD_LEASE: Duration = Duration::from_secs(10);

/// A tool's hold on a volume; let go when dropped.
pub struct Hold {
    pool: Arc<Pool>,
    header: String,
    lock: LockSpec,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
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
        if pool
            .lock_exclusive(&header, &lock, HOLD_LEASE, false)
            .map_err(io)?
            == Locked::Busy
        {
            return Ok(Err(holder_of(&pool, &header)));
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let (p, h, l) = (pool.clone(), header.clone(), lock.clone());
        let renewer = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HOLD_LEASE / 3) {
                if let Err(e) = p.lock_exclusive(&h, &l, HOLD_LEASE, true) {
                    tracing::warn!("{h}: the hold on the volume was not renewed: {e}");
                }
            }
        });
        Ok(Ok(Hold {
            pool,
            header,
            lock,
            stop: Some(stop),
            renewer: Some(renewer),
        }))
    }

    /// Let go now, reporting a failure (dropping lets go too, silently).
    pub fn release(mut self) -> io::Result<()> {
        self.stop_renewing();
        self.pool.unlock(&self.header, &self.lock)
    }

    fn stop_renewing(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.renewer.is_some() {
            self.stop_renewing();
            let _ = self.pool.unlock(&self.header, &self.lock);
        }
    }
}
