//! How long a tool's hold surely lasts: its lease counts from when the request that took or
//! renewed it was sent (the cluster starts it later, never earlier), and a renewal that
//! fails leaves the lease to run out. `Renewing` renews it on a thread and answers, for the
//! tool, whether it may still write (`ensure`).

use std::io;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::objects::Locked;

/// What the tool knows of its hold's lease.
#[derive(Debug)]
pub(crate) struct Lease {
    lease: Duration,
    /// Until when the hold surely lasts.
    until: Instant,
    /// Why the last renewal failed, if it did.
    failed: Option<String>,
    /// Why the hold is surely gone (another holds the lock, or it lapsed and was dropped).
    lost: Option<String>,
}

impl Lease {
    /// A hold for `lease`, taken by a request sent at `sent`.
    pub(crate) fn taken(sent: Instant, lease: Duration) -> Lease {
        Lease {
            lease,
            until: sent + lease,
            failed: None,
            lost: None,
        }
    }

    /// What the renewal sent at `sent` came to.
    pub(crate) fn renewed(&mut self, sent: Instant, outcome: &io::Result<Locked>) {
        match outcome {
            Ok(Locked::Taken) => {
                self.until = self.until.max(sent + self.lease);
                self.failed = None;
            }
            Ok(Locked::Busy) => self.lost = Some("another client holds the owner lock".into()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.lost = Some(format!("it lapsed and was dropped ({e})"))
            }
            Err(e) => self.failed = Some(e.to_string()),
        }
    }

    /// True once the hold is surely gone: renewing it is no use.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_some()
    }

    /// `Ok` if at `now` the hold surely lasts `margin` longer (the time a write started now
    /// may take); otherwise why it may not.
    pub(crate) fn check(&self, now: Instant, margin: Duration) -> Result<(), String> {
        if let Some(why) = &self.lost {
            return Err(format!("hold on the volume is lost: {why}"));
        }
        if now + margin < self.until {
            return Ok(());
        }
        Err(match &self.failed {
            Some(e) => format!("hold on the volume may have lapsed: renewing it failed ({e})"),
            None => format!(
                "hold on the volume may have lapsed: not renewed within its {} s lease",
                self.lease.as_secs_f64()
            ),
        })
    }
}

/// A lease renewed every third of it on a thread of its own, until stopped or lost.
pub(crate) struct Renewing {
    lease: Arc<Mutex<Lease>>,
    margin: Duration,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Renewing {
    /// Renew a hold taken for `lease` by a request sent at `sent`, with `renew` (which sends
    /// one renewal and says what it came to). A write is let through while a fifth of the
    /// lease is surely left.
    pub(crate) fn start(
        sent: Instant,
        lease: Duration,
        mut renew: impl FnMut() -> io::Result<Locked> + Send + 'static,
        on_failure: impl Fn(&str) + Send + 'static,
    ) -> Renewing {
        let state = Arc::new(Mutex::new(Lease::taken(sent, lease)));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(lease / 3) {
                let sent = Instant::now();
                let outcome = renew();
                if let Err(e) = &outcome {
                    on_failure(&e.to_string());
                }
                let mut l = shared.lock().unwrap_or_else(|e| e.into_inner());
                l.renewed(sent, &outcome);
                if l.is_lost() {
                    on_failure("lost");
                    return;
                }
            }
        });
        Renewing {
            lease: state,
            margin: lease / 5,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A handle that answers `ensure` for this lease, for a store that checks each write.
    pub(crate) fn watch(&self) -> Watch {
        Watch {
            lease: self.lease.clone(),
            margin: self.margin,
        }
    }

    /// Stop renewing (the thread is waited for); true if it was running.
    pub(crate) fn stop(&mut self) -> bool {
        drop(self.stop.take());
        match self.thread.take() {
            Some(t) => {
                let _ = t.join();
                true
            }
            None => false,
        }
    }
}

impl Drop for Renewing {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a hold surely lasts a while yet.
#[derive(Clone)]
pub(crate) struct Watch {
    lease: Arc<Mutex<Lease>>,
    margin: Duration,
}

impl Watch {
    /// `Ok` while the hold surely lasts; otherwise why it may not.
    pub(crate) fn ensure(&self) -> Result<(), String> {
        let l = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        l.check(Instant::now(), self.margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_lease_lasts_from_its_last_renewal_sent_and_no_longer() {
        let t0 = Instant::now();
        let mut l = Lease::taken(t0, 10 * S);
        assert!(l.check(t0 + 7 * S, 2 * S).is_ok());
        let e = l.check(t0 + 8 * S, 2 * S).unwrap_err();
        assert!(e.contains("not renewed within its 10 s lease"), "{e}");
        l.renewed(t0 + 3 * S, &Ok(Locked::Taken));
        assert!(l.check(t0 + 10 * S, 2 * S).is_ok());
        assert!(l.check(t0 + 11 * S, 2 * S).is_err());
        // A failed renewal extends nothing, and is named once the lease runs short.
        l.renewed(
            t0 + 6 * S,
            &Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)),
        );
        assert!(l.check(t0 + 10 * S, 2 * S).is_ok());
        let e = l.check(t0 + 11 * S, 2 * S).unwrap_err();
        assert!(
            e.contains("renewing it failed") && e.contains("timed out"),
            "{e}"
        );
        // A later renewal that succeeds mends it.
        l.renewed(t0 + 9 * S, &Ok(Locked::Taken));
        assert!(l.check(t0 + 16 * S, 2 * S).is_ok());
        // An older renewal's answer arriving late never shortens it.
        l.renewed(t0 + 2 * S, &Ok(Locked::Taken));
        assert!(l.check(t0 + 16 * S, 2 * S).is_ok());
    }

    #[test]
    fn a_lock_held_by_another_or_dropped_is_lost_at_once() {
        let t0 = Instant::now();
        let mut l = Lease::taken(t0, 10 * S);
        l.renewed(t0 + 3 * S, &Ok(Locked::Busy));
        let e = l.check(t0 + 3 * S, 2 * S).unwrap_err();
        assert!(e.contains("lost") && e.contains("another client"), "{e}");
        assert!(l.is_lost());
        let mut l = Lease::taken(t0, 10 * S);
        l.renewed(t0 + 3 * S, &Err(io::Error::from_raw_os_error(libc::ENOENT)));
        let e = l.check(t0 + 3 * S, 2 * S).unwrap_err();
        assert!(e.contains("lapsed and was dropped"), "{e}");
    }
}
