//! Whether a thread of a process on this node has a signal waiting, or is gone. A blocked
//! lock wait polls these: fuser answers the kernel's FUSE_INTERRUPT itself (ENOSYS), so the
//! kernel then waits for the reply with the signal left pending — which /proc shows.

/// True if thread `tid` has a pending signal that it neither blocks nor ignores.
pub fn signal_pending(tid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    let mask = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = mask("SigPnd:") | mask("ShdPnd:");
    pending & !mask("SigBlk:") & !mask("SigIgn:") != 0
}

/// True once thread `tid` no longer exists.
pub fn gone(tid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{tid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_thread_without_signals() {
        let me = std::process::id();
        assert!(!gone(me));
        assert!(!signal_pending(me));
        assert!(gone(u32::MAX - 1));
    }
}
