//! Whole small objects, their attributes and their advisory locks: what the session log and
//! the volume's owner lock are made of. Every call here is synchronous and durable when it
//! returns, as librados's synchronous calls are.

use std::ffi::{c_char, c_int};
use std::io;
use std::time::Duration;

use crate::cluster::{check, cstr, Pool};
use crate::ffi::LOCK_FLAG_MUST_RENEW;

/// One holder of an object's lock, as the cluster lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locker {
    /// Its Ceph client (`client.4123`).
    pub client: String,
    /// The cookie it locked with.
    pub cookie: String,
    /// Its address as the OSD saw it (`127.0.0.1:0/2840177741`).
    pub addr: String,
}

/// What taking an exclusive lock came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// This client holds it now, for the duration asked.
    Taken,
    /// Another client holds it, its lease not yet over.
    Busy,
}

impl Pool {
    /// `oid`'s whole content; empty if it does not exist.
    pub fn read_all(&self, oid: &str) -> io::Result<Vec<u8>> {
        let o = cstr(oid)?;
        let (mut size, mut mtime) = (0u64, 0 as libc::time_t);
        // SAFETY: a live context, a C string and two out-pointers.
        match check(unsafe { (self.api().stat)(self.io, o.as_ptr(), &mut size, &mut mtime) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Vec::new()),
            r => r?,
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            let n = self.read(oid, &mut buf[got..], got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// Add `buf` at the end of `oid` (made if missing), durably.
    pub fn append(&self, oid: &str, buf: &[u8]) -> io::Result<()> {
        let o = cstr(oid)?;
        let p = buf.as_ptr().cast::<c_char>();
        // SAFETY: a live context; `buf` is valid for its length.
        check(unsafe { (self.api().append)(self.io, o.as_ptr(), p, buf.len()) }).map(drop)
    }

    /// The attribute `name` of `oid`; `None` if it or the object does not exist.
    pub fn get_xattr(&self, oid: &str, name: &str) -> io::Result<Option<Vec<u8>>> {
        let (o, n) = (cstr(oid)?, cstr(name)?);
        let mut buf = vec![0u8; 4096];
        let p = buf.as_mut_ptr().cast::<c_char>();
        // SAFETY: a live context, C strings, and `buf` valid for its length.
        match check(unsafe { (self.api().getxattr)(self.io, o.as_ptr(), n.as_ptr(), p, 4096) }) {
            Ok(len) => {
                buf.truncate(len as usize);
                Ok(Some(buf))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODATA)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Set the attribute `name` of `oid` to `value`, durably.
    pub fn set_xattr(&self, oid: &str, name: &str, value: &[u8]) -> io::Result<()> {
        let (o, n) = (cstr(oid)?, cstr(name)?);
        let p = value.as_ptr().cast::<c_char>();
        // SAFETY: a live context, C strings, and `value` valid for its length.
        check(unsafe { (self.api().setxattr)(self.io, o.as_ptr(), n.as_ptr(), p, value.len()) })
            .map(drop)
    }

    /// Take the exclusive lock `name` on `oid` under `cookie` for `lease` (it lapses unless
    /// renewed), with `desc` shown to anyone who lists it. With `renew`, extend a lock this
    /// client holds under `cookie`: ENOENT if it lapsed and was dropped meanwhile.
    pub fn lock_exclusive(
        &self,
        oid: &str,
        lock: &LockSpec,
        lease: Duration,
        renew: bool,
    ) -> io::Result<Locked> {
        let (o, n) = (cstr(oid)?, cstr(&lock.name)?);
        let (c, d) = (cstr(&lock.cookie)?, cstr(&lock.description)?);
        let mut tv = libc::timeval {
            tv_sec: lease.as_secs() as libc::time_t,
            tv_usec: lease.subsec_micros() as libc::suseconds_t,
        };
        let flags = if renew { LOCK_FLAG_MUST_RENEW } else { 0 };
        let (io, api) = (self.io, self.api());
        // SAFETY: a live context, C strings and a timeval that outlives the call.
        let r = unsafe {
            (api.lock_exclusive)(
                io,
                o.as_ptr(),
                n.as_ptr(),
                c.as_ptr(),
                d.as_ptr(),
                &mut tv,
                flags,
            )
        };
        match check(r) {
            Ok(_) => Ok(Locked::Taken),
            // Held by another client (EBUSY), or by this one under another cookie (EEXIST).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) => {
                Ok(Locked::Busy)
            }
            Err(e) => Err(e),
        }
    }

    /// Let go of the lock `name` on `oid` held under `cookie`; one not held is no error.
    pub fn unlock(&self, oid: &str, lock: &LockSpec) -> io::Result<()> {
        let (o, n, c) = (cstr(oid)?, cstr(&lock.name)?, cstr(&lock.cookie)?);
        // SAFETY: a live context and C strings.
        match check(unsafe { (self.api().unlock)(self.io, o.as_ptr(), n.as_ptr(), c.as_ptr()) }) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        }
    }

    /// Who holds the lock `name` on `oid` (a lapsed holder may still be listed until someone
    /// takes the lock).
    pub fn lockers(&self, oid: &str, name: &str) -> io::Result<Vec<Locker>> {
        let (o, n) = (cstr(oid)?, cstr(name)?);
        let mut size = 1024usize;
        loop {
            let mut bufs = [(); 4].map(|_| vec![0u8; size]);
            let mut lens = [size; 4];
            let mut exclusive: c_int = 0;
            let [tag, clients, cookies, addrs] = &mut bufs;
            let [tl, cl, kl, al] = &mut lens;
            let p = |b: &mut Vec<u8>| b.as_mut_ptr().cast::<c_char>();
            // SAFETY: a live context, C strings, and each buffer valid for its length.
            let r = unsafe {
                (self.api().list_lockers)(
                    self.io,
                    o.as_ptr(),
                    n.as_ptr(),
                    &mut exclusive,
                    p(tag),
                    tl,
                    p(clients),
                    cl,
                    p(cookies),
                    kl,
                    p(addrs),
                    al,
                )
            };
            if r == -(libc::ERANGE as isize) {
                size = lens.iter().copied().max().unwrap_or(size).max(size * 2);
                continue;
            }
            if r == -(libc::ENOENT as isize) {
                return Ok(Vec::new());
            }
            let count = check(r as c_int)? as usize;
            let split = |b: &[u8], len: usize| -> Vec<String> {
                b[..len.min(b.len())]
                    .split(|&c| c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            };
            let (cl, kl, al) = (
                split(clients, lens[1]),
                split(cookies, lens[2]),
                split(addrs, lens[3]),
            );
            return Ok((0..count)
                .filter_map(|i| {
                    Some(Locker {
                        client: cl.get(i)?.clone(),
                        cookie: kl.get(i)?.clone(),
                        addr: al.get(i)?.clone(),
                    })
                })
                .collect());
        }
    }
}

/// A lock on an object: its name, this holder's cookie, and what it says of itself.
#[derive(Debug, Clone)]
pub struct LockSpec {
    /// The lock's name (one object may carry several).
    pub name: String,
    /// Tells this holder's lock from others' by the same client.
    pub cookie: String,
    /// Shown to whoever lists the lock.
    pub description: String,
}
