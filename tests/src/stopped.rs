//! A process stopped with SIGSTOP for as long as a guard lives: a mount or server stalled as
//! a paused VM or a debugger would stall it, resumed (SIGCONT) when the guard is dropped,
//! even when the test panics.

/// The process `pid` stopped until this is dropped.
pub struct Stopped(i32);

impl Stopped {
    /// Stop `pid` (a process the test started).
    pub fn new(pid: u32) -> Stopped {
        let pid = pid as i32;
        // SAFETY: signalling a child process the test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}
