//! Every inode number a call or an answer carries, rewritten: a server serving an export
//! shows its mounts the export's root as the root (inode 1) and takes their inode 1 as it.

use crate::messages::{Request, Response};

impl Request {
    /// Each inode number the call names (not one it asks to be made: `CreateAgain::ino`)
    /// replaced by `f` of it: those its classification names (`Request::meta`), found where
    /// it finds them.
    pub fn map_inodes(&mut self, f: &dyn Fn(u64) -> u64) {
        if let Request::CreateAgain { req, .. } = self {
            return req.map_inodes(f);
        }
        let (inode, entries) = self.places_mut();
        for ino in inode
            .into_iter()
            .chain(entries.into_iter().flatten().map(|e| e.0))
        {
            *ino = f(*ino);
        }
    }
}

impl Response {
    /// Each inode number the answer carries replaced by `f` of it.
    pub fn map_inodes(&mut self, f: &dyn Fn(u64) -> u64) {
        match self {
            Response::Attr(a) => a.ino = f(a.ino),
            Response::Entries(es) => es.iter_mut().for_each(|e| e.ino = f(e.ino)),
            Response::EntriesPlus(es) => es.iter_mut().for_each(|(e, a)| {
                e.ino = f(e.ino);
                a.ino = f(a.ino);
            }),
            Response::Empty
            | Response::Data
            | Response::Written(_)
            | Response::Bytes(_)
            | Response::Names(_)
            | Response::StatFs(_)
            | Response::Lock { .. }
            | Response::LockQueued
            | Response::Cancelled(_)
            | Response::Offset(_)
            | Response::Layout(_)
            | Response::Location(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::samples;

    /// Every inode a call's `meta()` names is one `map_inodes` rewrites.
    #[test]
    fn every_inode_meta_names_is_mapped() {
        let f = |ino: u64| ino ^ 0xF0F0_0000;
        for req in samples::requests() {
            let before = req.meta();
            let mut mapped = req.clone();
            mapped.map_inodes(&f);
            let after = mapped.meta();
            assert_eq!(after.inode, before.inode.map(f), "{req:?}");
            let dirs = |m: &crate::Meta| m.entries.iter().map(|(d, _)| *d).collect::<Vec<_>>();
            let want: Vec<u64> = dirs(&before).into_iter().map(f).collect();
            assert_eq!(dirs(&after), want, "{req:?}");
        }
    }
}
