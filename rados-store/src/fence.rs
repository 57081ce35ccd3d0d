//! Fencing: the cluster's OSD blocklist, which refuses every operation of a client address
//! from the moment an OSD knows of it, so a server that lost its volume (paused, partitioned)
//! cannot write one more block when it wakes up.

use std::ffi::c_char;
use std::io;
use std::time::Duration;

use crate::cluster::{check, cstr, Cluster};

impl Cluster {
    /// This client's address as the cluster knows it (`127.0.0.1:0/2840177741`): what a
    /// successor blocklists to fence it.
    pub fn addr(&self) -> io::Result<String> {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: a connected handle and an out-pointer.
        check(unsafe { (self.api.getaddrs)(self.handle, &mut out) })?;
        if out.is_null() {
            return Err(io::Error::other("librados gave no address"));
        }
        // SAFETY: a NUL-terminated string librados allocated; freed right after.
        let s = unsafe { std::ffi::CStr::from_ptr(out) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: allocated by librados, freed once.
        unsafe { (self.api.buffer_free)(out) };
        Ok(s)
    }

    /// Run one monitor command (JSON, as `ceph --format json` sends it); its output, or its
    /// error with the monitor's words.
    pub fn mon_command(&self, json: &str) -> io::Result<String> {
        let cmd = cstr(json)?;
        let mut cmds = [cmd.as_ptr()];
        let (mut out, mut outlen) = (std::ptr::null_mut::<c_char>(), 0usize);
        let (mut st, mut stlen) = (std::ptr::null_mut::<c_char>(), 0usize);
        // SAFETY: a connected handle; one C string; out-pointers librados fills.
        let r = unsafe {
            (self.api.mon_command)(
                self.handle,
                cmds.as_mut_ptr(),
                1,
                std::ptr::null(),
                0,
                &mut out,
                &mut outlen,
                &mut st,
                &mut stlen,
            )
        };
        let take = |p: *mut c_char, len: usize| {
            if p.is_null() {
                return String::new();
            }
            // SAFETY: librados's buffer of `len` bytes, freed once right after.
            let s = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
            let s = String::from_utf8_lossy(s).into_owned();
            unsafe { (self.api.buffer_free)(p) };
            s
        };
        let (out, status) = (take(out, outlen), take(st, stlen));
        check(r).map_err(|e| io::Error::new(e.kind(), format!("{json}: {e}: {status}")))?;
        Ok(out)
    }

    /// Blocklist the client at `addr` for `expire`, then wait until this client has the OSD
    /// map that says so: every operation sent from here on reaches OSDs that refuse `addr`.
    pub fn blocklist(&self, addr: &str, expire: Duration) -> io::Result<()> {
        let cmd = blocklist_command(addr, expire);
        self.mon_command(&cmd)?;
        // SAFETY: a connected handle.
        check(unsafe { (self.api.wait_for_latest_osdmap)(self.handle) }).map(drop)
    }
}

/// `osd blocklist add ADDR EXPIRE` as the monitor's JSON (Ceph 16 names it blocklist; the
/// expiry must be a float).
fn blocklist_command(addr: &str, expire: Duration) -> String {
    let addr: String = addr
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ":./[],-".contains(*c))
        .collect();
    format!(
        r#"{{"prefix": "osd blocklist", "blocklistop": "add", "addr": "{addr}", "expire": {:.1}}}"#,
        expire.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_blocklist_command_names_the_address_and_nothing_else() {
        let c = super::blocklist_command("127.0.0.1:0/123\"}, \"x", super::Duration::from_secs(60));
        assert_eq!(
            c,
            r#"{"prefix": "osd blocklist", "blocklistop": "add", "addr": "127.0.0.1:0/123,x", "expire": 60.0}"#
        );
    }
}
