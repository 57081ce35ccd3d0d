//! Fencing direct mounts, where the volume's store can cut a client off (RADOS: the OSD
//! blocklist). A direct mount tells the server the address its store knows it by
//! (`Request::StoreClient`); before the server takes the layouts of a mount that did not
//! give them back — a recall it left unanswered for a lease, or its session ended with
//! layouts out — it fences that address, so nothing the mount sends afterwards, however late
//! it wakes, reaches a block given to another file. A fenced mount's layouts are all taken:
//! nothing it holds is of use to it any more.
//!
//! A fenced address stays fenced (the blocklist holds it for a week): a session that gives
//! it again (the mount, resumed, on a new session) is refused, and no session at a fenced
//! address gets a layout, so the mount's reads and writes go through the server and none
//! fails on the cluster's refusal. Mounting again gives the mount a new address.
//!
//! On a store that cannot fence (a local image) nothing of this happens: the layouts are
//! taken, and the blocks are safe only while every mount keeps its lease.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Cuts a client off the volume's store.
pub trait Fence: Send + Sync {
    /// Fence the client at `address`: once this returns, nothing it sends reaches the
    /// volume.
    fn fence(&self, address: &str) -> std::io::Result<()>;
}

/// The store's clients of the direct mounts, by session.
#[derive(Default)]
pub(crate) struct Fencing {
    clients: Mutex<Clients>,
}

#[derive(Default)]
struct Clients {
    by_session: HashMap<u64, Client>,
    /// Every address fenced since the server started, whichever session gave it.
    fenced: HashSet<String>,
}

struct Client {
    address: String,
    fenced: bool,
}

impl Fencing {
    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Session `holder` reads and writes the volume as the store's client at `address`:
    /// false if that address was fenced (the session is known by it, as fenced).
    pub(crate) fn register(&self, holder: u64, address: &str) -> bool {
        let mut c = self.lock();
        let fenced = c.fenced.contains(address);
        let client = Client {
            address: address.to_string(),
            fenced,
        };
        c.by_session.insert(holder, client);
        !fenced
    }

    /// True if session `holder` said where the store knows it.
    #[cfg(test)]
    pub(crate) fn registered(&self, holder: u64) -> bool {
        self.lock().by_session.contains_key(&holder)
    }

    /// True if session `holder` may be given a layout (`write`: a write layout): not if its
    /// address is fenced, and for writing only once it gave one (it can be fenced).
    pub(crate) fn may_use_store(&self, holder: u64, write: bool) -> bool {
        match self.lock().by_session.get(&holder) {
            Some(c) => !c.fenced,
            None => !write,
        }
    }

    /// Fence session `holder`'s client with `fence`, once: true if it is fenced (now or
    /// before), false if it never said its address or the store refused (logged).
    pub(crate) fn fence(&self, fence: &Arc<dyn Fence>, holder: u64) -> bool {
        let address = match self.lock().by_session.get(&holder) {
            Some(c) if c.fenced => return true,
            Some(c) => c.address.clone(),
            None => {
                tracing::error!(
                    session = holder,
                    "a direct mount that never said its store address cannot be fenced"
                );
                return false;
            }
        };
        match fence.fence(&address) {
            Ok(()) => {
                tracing::warn!(session = holder, address, "direct mount fenced");
                let mut c = self.lock();
                if let Some(client) = c.by_session.get_mut(&holder) {
                    client.fenced |= client.address == address;
                }
                c.fenced.insert(address);
                true
            }
            Err(e) => {
                tracing::error!(
                    session = holder,
                    address,
                    "fencing the direct mount failed: {e}; its layouts are taken unfenced"
                );
                false
            }
        }
    }

    /// Session `holder` ended: its address is forgotten.
    pub(crate) fn forget(&self, holder: u64) {
        self.lock().by_session.remove(&holder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its fences; refuses them while `refuse` is set.
    #[derive(Default)]
    struct Counting {
        fenced: Mutex<Vec<String>>,
        refuse: AtomicUsize,
    }

    impl Fence for Counting {
        fn fence(&self, address: &str) -> std::io::Result<()> {
            if self.refuse.load(Ordering::SeqCst) > 0 {
                return Err(std::io::Error::from_raw_os_error(libc::EACCES));
            }
            self.fenced.lock().unwrap().push(address.to_string());
            Ok(())
        }
    }

    #[test]
    fn a_mount_is_fenced_at_its_address_once_and_one_that_never_said_it_is_not() {
        let f = Arc::new(Counting::default());
        let fence: Arc<dyn Fence> = f.clone();
        let fencing = Fencing::default();
        assert!(!fencing.fence(&fence, 7), "fenced with no address");
        assert!(fencing.register(7, "127.0.0.1:0/42"));
        assert!(fencing.registered(7));
        f.refuse.store(1, Ordering::SeqCst);
        assert!(!fencing.fence(&fence, 7), "a refused fence counted");
        f.refuse.store(0, Ordering::SeqCst);
        assert!(fencing.fence(&fence, 7));
        assert!(fencing.fence(&fence, 7));
        assert_eq!(*f.fenced.lock().unwrap(), ["127.0.0.1:0/42"]);
        fencing.forget(7);
        assert!(!fencing.registered(7));
    }

    #[test]
    fn a_fenced_address_gets_no_layout_on_its_session_or_any_later_one() {
        let fence: Arc<dyn Fence> = Arc::new(Counting::default());
        let fencing = Fencing::default();
        assert!(
            fencing.may_use_store(1, false),
            "reads of a mount with no address"
        );
        assert!(
            !fencing.may_use_store(1, true),
            "writes of a mount with no address"
        );
        assert!(fencing.register(1, "127.0.0.1:0/42"));
        assert!(fencing.may_use_store(1, true));
        assert!(fencing.fence(&fence, 1));
        assert!(!fencing.may_use_store(1, false), "reads of a fenced mount");
        assert!(!fencing.may_use_store(1, true), "writes of a fenced mount");
        fencing.forget(1);
        // The mount, resumed, gives its old address on a new session.
        assert!(
            !fencing.register(2, "127.0.0.1:0/42"),
            "a fenced address taken again"
        );
        assert!(!fencing.may_use_store(2, false));
        assert!(!fencing.may_use_store(2, true));
        // Mounted again, with a new address.
        assert!(fencing.register(3, "127.0.0.1:0/43"));
        assert!(fencing.may_use_store(3, true));
    }
}
