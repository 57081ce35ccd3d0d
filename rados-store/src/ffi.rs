//! librados's C API, loaded at run time (`dlopen("librados.so.2")`): the build needs no Ceph,
//! and a binary without the library on its host says how to get it the first time a
//! `rados://` name is used (`RWXFS_LIBRADOS` may name the library's path). Only the functions the store and its lock call are looked up;
//! their signatures are librados.h's, whose ABI has been stable since Ceph 0.x.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

pub(crate) type Rados = *mut c_void;
pub(crate) type IoCtx = *mut c_void;
pub(crate) type Completion = *mut c_void;

/// The shared object's name, as Ceph's client packages install it.
pub(crate) const LIBRARY: &str = "librados.so.2";

/// Declares `Api`, one field per librados function with librados.h's signature, and
/// `Api::resolve`, which looks each one up in the library.
macro_rules! api {
    ($($field:ident: $symbol:literal => fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The functions of librados the store uses, resolved once per process.
        pub(crate) struct Api {
            $(pub $field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Api {
            fn resolve(handle: *mut c_void) -> Result<Api, String> {
                Ok(Api {
                    $($field: {
                        let name = concat!($symbol, "\0");
                        // SAFETY: a valid handle and C string.
                        let p = unsafe { libc::dlsym(handle, name.as_ptr().cast()) };
                        if p.is_null() {
                            return Err(format!("{LIBRARY} lacks {}: Ceph 15 or later is needed", $symbol));
                        }
                        // SAFETY: librados.h declares this symbol with exactly this signature.
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(p)
                        }
                    },)*
                })
            }
        }
    };
}

type Str = *const c_char;

api! {
    create2: "rados_create2" => fn(*mut Rados, Str, Str, u64) -> c_int;
    conf_read_file: "rados_conf_read_file" => fn(Rados, Str) -> c_int;
    conf_set: "rados_conf_set" => fn(Rados, Str, Str) -> c_int;
    connect: "rados_connect" => fn(Rados) -> c_int;
    shutdown: "rados_shutdown" => fn(Rados);
    ioctx_create: "rados_ioctx_create" => fn(Rados, Str, *mut IoCtx) -> c_int;
    ioctx_destroy: "rados_ioctx_destroy" => fn(IoCtx);
    read: "rados_read" => fn(IoCtx, Str, *mut c_char, usize, u64) -> c_int;
    write_full: "rados_write_full" => fn(IoCtx, Str, Str, usize) -> c_int;
    remove: "rados_remove" => fn(IoCtx, Str) -> c_int;
    aio_create_completion2: "rados_aio_create_completion2"
        => fn(*mut c_void, *const c_void, *mut Completion) -> c_int;
    aio_write: "rados_aio_write" => fn(IoCtx, Str, Completion, Str, usize, u64) -> c_int;
    aio_remove: "rados_aio_remove" => fn(IoCtx, Str, Completion) -> c_int;
    aio_wait_for_complete: "rados_aio_wait_for_complete" => fn(Completion) -> c_int;
    aio_is_complete: "rados_aio_is_complete" => fn(Completion) -> c_int;
    aio_get_return_value: "rados_aio_get_return_value" => fn(Completion) -> c_int;
    aio_release: "rados_aio_release" => fn(Completion);
    aio_flush: "rados_aio_flush" => fn(IoCtx) -> c_int;
    append: "rados_append" => fn(IoCtx, Str, Str, usize) -> c_int;
    stat: "rados_stat" => fn(IoCtx, Str, *mut u64, *mut libc::time_t) -> c_int;
    lock_exclusive: "rados_lock_exclusive"
        => fn(IoCtx, Str, Str, Str, Str, *mut libc::timeval, u8) -> c_int;
    unlock: "rados_unlock" => fn(IoCtx, Str, Str, Str) -> c_int;
    list_lockers: "rados_list_lockers" => fn(
        IoCtx, Str, Str, *mut c_int, *mut c_char, *mut usize, *mut c_char, *mut usize,
        *mut c_char, *mut usize, *mut c_char, *mut usize
    ) -> isize;
    getxattr: "rados_getxattr" => fn(IoCtx, Str, Str, *mut c_char, usize) -> c_int;
    setxattr: "rados_setxattr" => fn(IoCtx, Str, Str, Str, usize) -> c_int;
    getaddrs: "rados_getaddrs" => fn(Rados, *mut *mut c_char) -> c_int;
    mon_command: "rados_mon_command" => fn(
        Rados, *mut Str, usize, Str, usize, *mut *mut c_char, *mut usize, *mut *mut c_char,
        *mut usize
    ) -> c_int;
    buffer_free: "rados_buffer_free" => fn(*mut c_char);
    wait_for_latest_osdmap: "rados_wait_for_latest_osdmap" => fn(Rados) -> c_int;
}

/// `rados_lock_exclusive`'s flag: renew the lock this client holds under the same cookie,
/// and fail (ENOENT) if it does not hold it any more.
pub(crate) const LOCK_FLAG_MUST_RENEW: u8 = 0x2;

/// librados, loaded on first use; the error says why it could not be and how to get it.
pub(crate) fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// `RWXFS_LIBRADOS` names another copy of the library (a path), else the loader's search.
fn load() -> Result<Api, String> {
    let name = std::env::var("RWXFS_LIBRADOS").unwrap_or_else(|_| LIBRARY.to_string());
    let c = std::ffi::CString::new(name.as_str()).map_err(|_| "RWXFS_LIBRADOS: a NUL in it")?;
    // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "RADOS support needs Ceph's client library {name}, which cannot be loaded ({}); \
             install it (Debian/Ubuntu: apt-get install librados2; Fedora/RHEL: dnf install \
             librados2), or name its path in RWXFS_LIBRADOS",
            dl_error()
        ));
    }
    Api::resolve(handle)
}

fn dl_error() -> String {
    // SAFETY: dlerror returns a thread-local C string or null.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return "not found".into();
    }
    // SAFETY: non-null, NUL-terminated, valid until the next dl call on this thread.
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}
