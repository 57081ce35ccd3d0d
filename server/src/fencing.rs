//! Fencing direct mounts, where the volume's store can cut a client off (RADOS: the OSD
//! blocklist). A direct mount tells the server the address its store knows it by
//! (`Request::StoreClient`); before the server takes the layouts of a mount that did not
//! give them back — a recall it left unanswered for a lease, or its session ended with
//! layouts out — it fences that address, so nothing the mount sends afterwards, however late
//! it wakes, reaches a block given to another file. A fenced mount's layouts are all taken:
//! nothing it holds is of use to it any more.
//!
//! On a store that cannot fence (a local image) nothing of this happens: the layouts are
//! taken, and the blocks are safe only while every mount keeps its lease.

use std::collections::HashMap;
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
    clients: Mutex<HashMap<u64, Client>>,
}

struct Client {
    address: String,
    fenced: bool,
}

impl Fencing {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Session `holder` reads and writes the volume as the store's client at `address`.
    pub(crate) fn register(&self, holder: u64, address: &str) {
        let client = Client {
            address: address.to_string(),
            fenced: false,
        };
        self.lock().insert(holder, client);
    }

    /// True if session `holder` said where the store knows it.
    pub(crate) fn registered(&self, holder: u64) -> bool {
        self.lock().contains_key(&holder)
    }

    /// Fence session `holder`'s client with `fence`, once: true if it is fenced (now or
    /// before), false if it never said its address or the store refused (logged).
    pub(crate) fn fence(&self, fence: &Arc<dyn Fence>, holder: u64) -> bool {
        let address = match self.lock().get(&holder) {
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
                if let Some(c) = self.lock().get_mut(&holder) {
                    c.fenced |= c.address == address;
                }
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
        self.lock().remove(&holder);
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
        fencing.register(7, "127.0.0.1:0/42");
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
}
