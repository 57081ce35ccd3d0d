#![allow(dead_code)] // each test file uses a different part of this module
use std::sync::Arc;

use volume::{fsck, mkfs, MemStore, MkfsOptions, Volume};

pub const MIB: u64 = 1024 * 1024;

pub fn fresh(size: u64) -> Arc<MemStore> {
    let store = Arc::new(MemStore::new(size));
    mkfs(&store, &MkfsOptions::default()).unwrap();
    store
}

pub fn fresh_with_inodes(size: u64, inodes: u64) -> Arc<MemStore> {
    let store = Arc::new(MemStore::new(size));
    mkfs(
        &store,
        &MkfsOptions {
            inodes: Some(inodes),
            ..Default::default()
        },
    )
    .unwrap();
    store
}

/// A volume whose journal is only `journal_blocks` long: small transactions already fill it.
pub fn fresh_with_journal(size: u64, journal_blocks: u64) -> Arc<MemStore> {
    let store = Arc::new(MemStore::new(size));
    mkfs(
        &store,
        &MkfsOptions {
            journal_blocks: Some(journal_blocks),
            ..Default::default()
        },
    )
    .unwrap();
    store
}

pub fn open(store: &Arc<MemStore>) -> Volume<Arc<MemStore>> {
    Volume::open(store.clone()).unwrap()
}

pub fn assert_clean(store: &Arc<MemStore>) {
    let r = fsck::check(store).unwrap();
    assert!(r.is_clean(), "fsck found: {:#?}", r.findings);
}
