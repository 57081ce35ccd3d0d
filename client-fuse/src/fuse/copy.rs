//! `copy_file_range`: the range is read and written through the backend a chunk at a time
//! (no server-side copy yet), as the copying process.

use volume::FsResult;

use super::MAX_WRITE;
use crate::backend::{Backend, WriteHow};

/// One end of a copy: a file and an offset in it.
pub(super) struct End {
    pub ino: u64,
    pub offset: u64,
}

/// Copy up to `len` bytes from `from` to `to`; the bytes copied (fewer at the source's end
/// or if the volume fills up).
pub(super) fn copy_range(
    backend: &dyn Backend,
    from: End,
    to: End,
    len: u64,
    how: WriteHow,
) -> FsResult<u64> {
    let mut done = 0u64;
    while done < len {
        let chunk = (len - done).min(MAX_WRITE as u64) as u32;
        let data = backend.read(from.ino, from.offset + done, chunk)?;
        if data.is_empty() {
            break;
        }
        let n = backend.write(to.ino, to.offset + done, &data, how)?;
        done += n as u64;
        if (n as usize) < data.len() {
            break;
        }
    }
    Ok(done)
}
