//! The Raw backend: this process runs the engine itself on an image, a local transport to
//! it. Each call is built as the same `Request` a remote mount sends and run through the same
//! table of operations (`ops`) the server runs it through — only placed in the client. With
//! one writer it is a local file system; with several on one image, each has its own
//! metadata and they overwrite each other (the point of `rwxfs demo`).

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ops::Trusted;
use protocol::{Request, Response};
use volume::{BlockStore, FsResult, SharedVolume, Volume};

use crate::backend::Backend;

/// How often pending metadata is committed if nothing forces it sooner.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// The raw placement's transport: the operation table run on the engine in this process, on the
/// image itself.
pub struct RawBackend<S: BlockStore + 'static> {
    vol: Arc<SharedVolume<S>>,
}

impl<S: BlockStore + 'static> RawBackend<S> {
    /// Wrap an opened volume and start the periodic commit.
    pub fn new(vol: Volume<S>) -> RawBackend<S> {
        let vol = Arc::new(SharedVolume::new(vol));
        let weak = Arc::downgrade(&vol);
        thread::Builder::new()
            .name("rwxfs-commit".into())
            .spawn(move || loop {
                thread::sleep(COMMIT_INTERVAL / 2);
                let Some(v) = weak.upgrade() else { return };
                if let Err(e) = v.commit_if_older(COMMIT_INTERVAL) {
                    tracing::error!("periodic commit failed: {e}");
                }
            })
            .ok();
        RawBackend { vol }
    }
}

impl<S: BlockStore + 'static> Backend for RawBackend<S> {
    /// Run `req` through the table of operations. Permissions were checked by this mount's
    /// kernel (default_permissions), as a local file system leaves them to it.
    fn call(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)> {
        let (r, out) = ops::execute(&self.vol, req, bulk, &Trusted);
        r.map(|resp| (resp, out))
    }

    fn shutdown(&self) -> FsResult<()> {
        self.vol.commit()
    }
}
