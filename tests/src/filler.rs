//! Filling a volume with a file whose every byte is known, and checking it afterwards: what
//! the direct-mode fencing tests give a stalled mount's blocks to, so that one byte it
//! writes there when it wakes shows.

use std::io::Write;
use std::path::Path;

/// The byte a filler file holds at `at`: unlike anything the tests' stalled mounts write.
pub fn fill_byte(at: u64) -> u8 {
    0x80 | ((at / 4096) % 127) as u8
}

/// Write `path` with `fill_byte` until the volume is full: every block it can take, a
/// stalled mount's included if they were let go. Its size.
pub fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = 256 * 1024u64;
    let mut at = 0u64;
    loop {
        let buf: Vec<u8> = (at..at + chunk).map(fill_byte).collect();
        if f.write_all(&buf).is_err() {
            break;
        }
        at += chunk;
    }
    let _ = f.sync_all();
    drop(f);
    std::fs::metadata(path).unwrap().len()
}

/// The filler at `path` holds what `fill` wrote, to the byte.
pub fn filled_intact(path: &Path) {
    let got = std::fs::read(path).unwrap();
    assert!(
        got.len() > 1 << 20,
        "the filler took only {} bytes",
        got.len()
    );
    if let Some(at) = (0..got.len()).find(|&k| got[k] != fill_byte(k as u64)) {
        panic!(
            "{} bytes into the other file, a byte not its own: {:#x} (the stalled mount wrote \
             blocks given to it)",
            at, got[at]
        );
    }
}
