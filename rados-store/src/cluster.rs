//! A connection to a Ceph cluster and a pool in it: librados's handles behind safe methods.
//! librados is thread-safe; every method here may be called from any thread.

use std::ffi::{c_char, c_int, CString};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::ffi::{self, Api};
use crate::RadosError;

/// How to reach the cluster: `--ceph-conf FILE` and `--ceph-id ID`.
#[derive(Debug, Clone, Default)]
pub struct CephOptions {
    /// The configuration file; default: `CEPH_CONF`, then Ceph's own search
    /// (/etc/ceph/ceph.conf, ~/.ceph/ceph.conf, ./ceph.conf).
    pub conf: Option<PathBuf>,
    /// The client's id (`admin` for client.admin); default: admin.
    pub id: Option<String>,
}

/// A connected cluster handle; shut down when the last pool and lock using it are gone.
pub struct Cluster {
    pub(crate) api: &'static Api,
    pub(crate) handle: ffi::Rados,
}

// SAFETY: librados's cluster handle may be used from any thread.
unsafe impl Send for Cluster {}
// SAFETY: as above; librados locks internally.
unsafe impl Sync for Cluster {}

/// An error code returned by librados (negative errno) as an io::Error.
pub(crate) fn check(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::from_raw_os_error(-r))
    } else {
        Ok(r)
    }
}

pub(crate) fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

impl Cluster {
    /// Read the configuration and connect. An unreachable cluster fails after
    /// `client_mount_timeout` (15 s here unless the configuration says otherwise).
    pub fn connect(opts: &CephOptions) -> Result<Arc<Cluster>, RadosError> {
        let api = ffi::api().map_err(RadosError::NoLibrary)?;
        let id = opts.id.clone().unwrap_or_else(|| "admin".into());
        let conf = opts
            .conf
            .clone()
            .or_else(|| std::env::var_os("CEPH_CONF").map(PathBuf::from));
        let conf_shown = conf.as_ref().map_or_else(
            || "Ceph's default configuration".to_string(),
            |p| p.display().to_string(),
        );
        let connect_err = |source| RadosError::Connect {
            id: format!("client.{id}"),
            conf: conf_shown.clone(),
            source,
        };
        let mut handle: ffi::Rados = std::ptr::null_mut();
        let name = cstr(&format!("client.{id}")).map_err(connect_err)?;
        // SAFETY: valid out-pointer and C strings.
        check(unsafe { (api.create2)(&mut handle, c"ceph".as_ptr(), name.as_ptr(), 0) })
            .map_err(connect_err)?;
        let cluster = Arc::new(Cluster { api, handle });
        // Before the file, so a value there wins: 300 s of silence is too long to be told
        // that a cluster cannot be reached.
        cluster
            .set("client_mount_timeout", "15")
            .map_err(connect_err)?;
        let path = conf
            .as_ref()
            .map(|p| cstr(&p.to_string_lossy()))
            .transpose()
            .map_err(connect_err)?;
        let path_ptr = path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
        // SAFETY: a live handle; a C string or null (Ceph's search).
        check(unsafe { (api.conf_read_file)(cluster.handle, path_ptr) }).map_err(|e| {
            RadosError::Config {
                conf: conf_shown.clone(),
                source: e,
            }
        })?;
        // SAFETY: a live, configured handle.
        check(unsafe { (api.connect)(cluster.handle) }).map_err(connect_err)?;
        Ok(cluster)
    }

    /// Set one configuration option.
    pub fn set(&self, option: &str, value: &str) -> io::Result<()> {
        let (o, v) = (cstr(option)?, cstr(value)?);
        // SAFETY: a live handle and C strings.
        check(unsafe { (self.api.conf_set)(self.handle, o.as_ptr(), v.as_ptr()) }).map(drop)
    }

    /// The pool named `name`, for I/O.
    pub fn pool(self: &Arc<Self>, name: &str) -> Result<Pool, RadosError> {
        let c = cstr(name).map_err(|e| RadosError::Io(name.to_string(), e))?;
        let mut io: ffi::IoCtx = std::ptr::null_mut();
        // SAFETY: a connected handle, a C string and an out-pointer.
        match check(unsafe { (self.api.ioctx_create)(self.handle, c.as_ptr(), &mut io) }) {
            Ok(_) => Ok(Pool {
                cluster: self.clone(),
                io,
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(RadosError::NoPool(name.to_string()))
            }
            Err(e) => Err(RadosError::Io(format!("pool {name}"), e)),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the handle is live and nothing uses it any more (every Pool holds an Arc).
        unsafe { (self.api.shutdown)(self.handle) }
    }
}

/// An I/O context on one pool.
pub struct Pool {
    cluster: Arc<Cluster>,
    pub(crate) io: ffi::IoCtx,
}

// SAFETY: librados's I/O contexts may be used from any thread.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Pool {
    pub(crate) fn api(&self) -> &'static Api {
        self.cluster.api
    }

    /// The cluster this pool is reached through.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Read up to `buf.len()` bytes of `oid` at `off`; how many there were (0 for an object
    /// that does not exist).
    pub fn read(&self, oid: &str, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let o = cstr(oid)?;
        let p = buf.as_mut_ptr().cast::<c_char>();
        // SAFETY: a live context; `buf` is valid for `buf.len()` bytes.
        match check(unsafe { (self.api().read)(self.io, o.as_ptr(), p, buf.len(), off) }) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Replace `oid`'s whole content with `buf`, durably.
    pub fn write_full(&self, oid: &str, buf: &[u8]) -> io::Result<()> {
        let o = cstr(oid)?;
        let p = buf.as_ptr().cast::<c_char>();
        // SAFETY: a live context; `buf` is valid for its length.
        check(unsafe { (self.api().write_full)(self.io, o.as_ptr(), p, buf.len()) }).map(drop)
    }

    /// Remove `oid`; one that does not exist is no error.
    pub fn remove(&self, oid: &str) -> io::Result<()> {
        let o = cstr(oid)?;
        // SAFETY: a live context and a C string.
        match check(unsafe { (self.api().remove)(self.io, o.as_ptr()) }) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        }
    }

    /// Start writing `buf` to `oid` at `off`; librados copies `buf` before returning.
    pub fn aio_write(&self, oid: &str, buf: &[u8], off: u64) -> io::Result<Pending> {
        let o = cstr(oid)?;
        let c = Pending::new(self.api())?;
        let p = buf.as_ptr().cast::<c_char>();
        // SAFETY: a live context and completion; `buf` is valid for its length (copied).
        check(unsafe { (self.api().aio_write)(self.io, o.as_ptr(), c.raw, p, buf.len(), off) })?;
        Ok(c)
    }

    /// Start removing `oid`.
    pub fn aio_remove(&self, oid: &str) -> io::Result<Pending> {
        let o = cstr(oid)?;
        let c = Pending::new(self.api())?;
        // SAFETY: a live context and completion.
        check(unsafe { (self.api().aio_remove)(self.io, o.as_ptr(), c.raw) })?;
        Ok(c)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the context is live; librados waits for what is in flight on it.
        unsafe {
            (self.api().aio_flush)(self.io);
            (self.api().ioctx_destroy)(self.io);
        }
    }
}

/// One asynchronous operation in flight; acknowledged means durable on the OSDs.
pub struct Pending {
    api: &'static Api,
    raw: ffi::Completion,
}

// SAFETY: a completion may be waited on and read from any thread.
unsafe impl Send for Pending {}
// SAFETY: as above; librados locks internally.
unsafe impl Sync for Pending {}

impl Pending {
    fn new(api: &'static Api) -> io::Result<Pending> {
        let mut raw: ffi::Completion = std::ptr::null_mut();
        // SAFETY: no callback, an out-pointer.
        check(unsafe {
            (api.aio_create_completion2)(std::ptr::null_mut(), std::ptr::null(), &mut raw)
        })?;
        Ok(Pending { api, raw })
    }

    /// Wait until the operation is acknowledged; its result.
    pub fn wait(&self) -> io::Result<()> {
        // SAFETY: a live completion.
        unsafe { (self.api.aio_wait_for_complete)(self.raw) };
        // SAFETY: as above, and it is complete.
        check(unsafe { (self.api.aio_get_return_value)(self.raw) }).map(drop)
    }

    /// True once the operation is acknowledged.
    pub fn is_complete(&self) -> bool {
        // SAFETY: a live completion.
        unsafe { (self.api.aio_is_complete)(self.raw) != 0 }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // SAFETY: released once; librados keeps it until the operation finishes.
        unsafe { (self.api.aio_release)(self.raw) }
    }
}
