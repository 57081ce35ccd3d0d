//! `open(O_CREAT)` when the name appeared since the kernel looked it up (another mount
//! created it): without O_EXCL the existing file is opened instead, and truncated for
//! O_TRUNC (which the kernel leaves to us once it asked to create).

use protocol::{Attr, SetAttr};
use volume::{FsError, FsResult};

use crate::backend::Backend;

/// Create `name` in `parent` and open it, or open the file already there (see above).
pub(super) fn create_or_open(
    backend: &dyn Backend,
    parent: u64,
    name: &[u8],
    mode: u32,
    (uid, gid): (u32, u32),
    flags: i32,
) -> FsResult<Attr> {
    match backend.create(parent, name, mode, uid, gid) {
        Err(FsError::Exists) if flags & libc::O_EXCL == 0 => {}
        r => return r,
    }
    let a = backend.lookup(parent, name)?;
    let a = backend.open(a.ino, flags)?;
    if flags & libc::O_TRUNC != 0 && a.size != 0 {
        let truncate = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        if let Err(e) = backend.setattr(a.ino, truncate) {
            let _ = backend.release(a.ino);
            return Err(e);
        }
    }
    Ok(a)
}
