//! What a test writes through a mount and waits to read back.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use demo::workload::contents;

/// How long a change may take to reach another mount before a test fails: far above an
/// honest run on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// `n` of the workload's file contents for `seed`, one after another.
pub fn data(seed: usize, n: usize) -> Vec<u8> {
    (0..n).flat_map(|j| contents(seed, j)).collect()
}

/// Wait until `path` reads as `want` (another mount's change reaches this one through the
/// server's invalidations, or when its cache times out); a panic with what it last read if
/// it never does.
pub fn reads_as(path: &Path, want: &[u8]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match std::fs::read(path) {
            Ok(got) if got == want => return,
            got if Instant::now() > deadline => panic!(
                "{} never read as expected ({} bytes wanted): {}",
                path.display(),
                want.len(),
                unlike(&got, want)
            ),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// What a read that is not `want` got instead.
fn unlike(got: &std::io::Result<Vec<u8>>, want: &[u8]) -> String {
    match got {
        Err(e) => e.to_string(),
        Ok(got) => match got.iter().zip(want).position(|(g, w)| g != w) {
            Some(at) => format!("{} bytes, the first wrong at {at}", got.len()),
            None => format!("{} bytes, the same as far as they go", got.len()),
        },
    }
}

/// Write `data` to a new file at `p` and make it durable: the first error of either (a
/// mount's write-behind reports a refused write at the next write or at fsync).
pub fn write_synced(p: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(p)?;
    f.write_all(data)?;
    f.sync_all()
}

/// statvfs(3) of the file system at `path`.
pub fn statvfs(path: &Path) -> libc::statvfs {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(
        r,
        0,
        "statvfs {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    st
}
