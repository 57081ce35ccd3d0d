//! What is mounted at a path in this mount namespace, from `/proc/self/mountinfo`.

use std::path::Path;

/// One mount, as mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// What was mounted: for rwxfs, `HOST:PORT/NAME` (the volume id).
    pub(crate) source: String,
    /// Its type: `fuse` or `fuse.rwxfs` for rwxfs.
    pub(crate) fstype: String,
    /// The per-mount options: `ro` or `rw`, `nosuid`, `nodev`, `noexec`, ...
    pub(crate) options: Vec<String>,
}

impl Entry {
    /// The mount carries option `o`.
    pub(crate) fn has(&self, o: &str) -> bool {
        self.options.iter().any(|x| x == o)
    }
}

/// The mount at `path` (the one on top, if several are stacked there), if any.
pub(crate) fn at(path: &Path) -> Option<Entry> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    find(&info, &path.to_string_lossy())
}

/// The last mount at `want` in mountinfo text `info`.
fn find(info: &str, want: &str) -> Option<Entry> {
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        // Fields after the optional ones: `-`, the type, the source.
        let dash = f.iter().skip(6).position(|x| *x == "-")? + 6;
        if unescape(f.get(4)?) != want {
            return None;
        }
        Some(Entry {
            source: unescape(f.get(dash + 2)?),
            fstype: f.get(dash + 1)?.to_string(),
            options: f[5].split(',').map(str::to_string).collect(),
        })
    })
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_on_top_with_its_source_and_options() {
        let info = "\
36 35 0:31 / /a\\040b rw,relatime shared:1 - tmpfs tmpfs rw
37 36 0:40 / /a\\040b ro,nosuid,nodev shared:2 master:1 - fuse.rwxfs 127.0.0.1:7411/pvc-1 ro,user_id=0
38 35 0:41 / /c rw - fuse.rwxfs h:1/x rw
";
        let e = find(info, "/a b").unwrap();
        assert_eq!(e.source, "127.0.0.1:7411/pvc-1");
        assert_eq!(e.fstype, "fuse.rwxfs");
        assert!(e.has("ro") && e.has("nosuid") && !e.has("noexec"));
        assert_eq!(find(info, "/c").unwrap().options, ["rw"]);
        assert_eq!(find(info, "/d"), None);
    }
}
