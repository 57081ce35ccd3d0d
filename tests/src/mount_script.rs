//! A shell script run as an admin would, with `mount -t rwxfs` and fstab lines working: the
//! `mount.rwxfs` helper is installed only inside a private mount namespace (a tmpfs over
//! /usr/sbin holding the one link), so the machine's /sbin is never touched.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::bin;

/// A script to run (`sh -ex`) with the helper installed; `$RWXFS` names the binary.
pub struct MountScript {
    cmd: Command,
}

/// What a script did; the background mount processes it reported ("(pid N)") are stopped,
/// by pid, when this drops, even when the test fails before the script unmounted them.
pub struct Ran {
    /// It exited 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (`sh -x` traces each command there).
    pub stderr: String,
}

impl MountScript {
    /// `script`, after the lines that install the helper.
    pub fn new(script: &str) -> MountScript {
        let script = format!(
            "mount -t tmpfs helpers /usr/sbin\nln -s \"$RWXFS\" /usr/sbin/mount.rwxfs\n{script}"
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-ex", "-c"])
            .arg(script)
            .env("RWXFS", bin())
            .current_dir("/");
        MountScript { cmd }
    }

    /// With `$key` set to `value`.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> MountScript {
        self.cmd.env(key, value);
        self
    }

    /// Run it to its end.
    pub fn run(mut self) -> Ran {
        let out = self.cmd.output().expect("unshare");
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// The pids of the background mount processes the script reported.
    pub fn pids(&self) -> Vec<i32> {
        self.stdout
            .split("(pid ")
            .skip(1)
            .filter_map(|s| s.split(')').next()?.parse().ok())
            .collect()
    }

    /// Panics with the script's output unless it exited 0.
    pub fn assert_ok(&self) {
        assert!(self.ok, "script failed:\n{}\n{}", self.stdout, self.stderr);
    }

    /// Panics unless every background mount process the script started has exited (after
    /// its umount), waiting up to ten seconds for each.
    pub fn assert_mounts_ended(&self) {
        for pid in self.pids() {
            let gone = (0..200).any(|_| {
                std::thread::sleep(Duration::from_millis(50));
                !Path::new(&format!("/proc/{pid}")).exists()
            });
            assert!(gone, "mount process {pid} still running after umount");
        }
    }
}

impl Drop for Ran {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: signalling a process this test's script started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}
