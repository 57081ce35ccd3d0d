//! The metadata journal: a transaction is the full images of every metadata block it changes,
//! written as one run at the journal's start (`descriptor, blocks..., descriptor, ..., commit`),
//! made durable, then written home. Only a transaction whose commit block carries the matching
//! sequence number and a checksum over all its blocks is ever replayed, so a torn one is ignored.
//! The checksum covers the blocks' payloads, not their seals: a CRC over blocks that each end
//! in their own CRC is the same whatever they hold, so a mix of two transactions' images
//! would pass it.
//! Images of format 1 (`layout::OLDEST_FORMAT_VERSION`) were written with a checksum over
//! whole images, descriptors left out: on those, a transaction that passes either is replayed
//! (their first commit by this build writes the new format, and may be the one found).
//! Replay is idempotent: the journal always holds the newest committed transaction.

use crate::error::{FsError, FsResult};
use crate::layout::{
    get_u32, get_u64, put_u32, put_u64, seal, verify, Geometry, BLOCK_SIZE, PAYLOAD,
};
use crate::store::BlockStore;

const DESC_MAGIC: &[u8; 8] = b"RWXJDESC";
const COMMIT_MAGIC: &[u8; 8] = b"RWXJCMIT";
/// The first format whose checksum covers payloads; older ones also pass with the old one.
const PAYLOAD_CHECKSUM_SINCE: u32 = 2;
/// Home-block numbers one descriptor block lists.
const PER_DESC: usize = (crate::layout::PAYLOAD - 24) / 8;

/// Blocks of journal a transaction of `n` metadata blocks needs.
pub(crate) fn blocks_needed(n: usize) -> u64 {
    (n + n.div_ceil(PER_DESC).max(1) + 1) as u64
}

/// Largest transaction (in metadata blocks) the journal holds.
pub(crate) fn capacity(geo: &Geometry) -> usize {
    let j = geo.journal_blocks as usize;
    j - j.div_ceil(PER_DESC) - 2
}

/// Write one transaction and make it durable. `blocks` are sealed images with their home.
pub(crate) fn write_txn<S: BlockStore>(
    store: &S,
    geo: &Geometry,
    seq: u64,
    blocks: &[(u64, &[u8])],
) -> FsResult<()> {
    let need = blocks_needed(blocks.len());
    if need > geo.journal_blocks {
        return Err(FsError::Corrupt(format!(
            "transaction of {} blocks exceeds the journal ({} blocks)",
            blocks.len(),
            geo.journal_blocks
        )));
    }
    let mut buf = vec![0u8; need as usize * BLOCK_SIZE];
    let mut pos = 0usize;
    let mut crc = 0u32;
    for chunk in blocks.chunks(PER_DESC) {
        let jblock = geo.journal_start + pos as u64;
        let d = &mut buf[pos * BLOCK_SIZE..(pos + 1) * BLOCK_SIZE];
        d[0..8].copy_from_slice(DESC_MAGIC);
        put_u64(d, 8, seq);
        put_u32(d, 16, chunk.len() as u32);
        for (i, (home, _)) in chunk.iter().enumerate() {
            put_u64(d, 24 + i * 8, *home);
        }
        seal(d, jblock);
        crc = crc32c::crc32c_append(crc, &d[..PAYLOAD]);
        pos += 1;
        for (_, img) in chunk {
            buf[pos * BLOCK_SIZE..(pos + 1) * BLOCK_SIZE].copy_from_slice(img);
            crc = crc32c::crc32c_append(crc, &img[..PAYLOAD]);
            pos += 1;
        }
    }
    let jblock = geo.journal_start + pos as u64;
    let c = &mut buf[pos * BLOCK_SIZE..(pos + 1) * BLOCK_SIZE];
    c[0..8].copy_from_slice(COMMIT_MAGIC);
    put_u64(c, 8, seq);
    put_u32(c, 16, blocks.len() as u32);
    put_u32(c, 20, crc);
    seal(c, jblock);
    store.write_at(&buf, geo.journal_start * BLOCK_SIZE as u64)?;
    store.flush()?;
    Ok(())
}

/// A committed transaction: its sequence number and its blocks with their homes.
pub(crate) type Txn = (u64, Vec<(u64, Vec<u8>)>);

/// The committed transaction at the journal's start, if there is a whole one, on an image of
/// format `version`.
pub(crate) fn read_txn<S: BlockStore>(
    store: &S,
    geo: &Geometry,
    version: u32,
) -> FsResult<Option<Txn>> {
    let mut pos = 0u64;
    let mut seq = None;
    let mut out = Vec::new();
    let mut crc = 0u32;
    // The checksum of format 1: whole images, descriptors left out.
    let mut crc_v1 = 0u32;
    let mut b = vec![0u8; BLOCK_SIZE];
    while pos < geo.journal_blocks {
        let jblock = geo.journal_start + pos;
        store.read_at(&mut b, jblock * BLOCK_SIZE as u64)?;
        if !verify(&b, jblock) || b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        let this_seq = get_u64(&b, 8);
        if *seq.get_or_insert(this_seq) != this_seq {
            return Ok(None);
        }
        if &b[0..8] == COMMIT_MAGIC {
            let (n, sum) = (get_u32(&b, 16) as usize, get_u32(&b, 20));
            let sum_ok = sum == crc || (version < PAYLOAD_CHECKSUM_SINCE && sum == crc_v1);
            if n != out.len() || !sum_ok {
                return Ok(None);
            }
            return Ok(Some((this_seq, out)));
        }
        if &b[0..8] != DESC_MAGIC {
            return Ok(None);
        }
        let n = get_u32(&b, 16) as usize;
        if n > PER_DESC || pos + 1 + n as u64 > geo.journal_blocks {
            return Ok(None);
        }
        let homes: Vec<u64> = (0..n).map(|i| get_u64(&b, 24 + i * 8)).collect();
        crc = crc32c::crc32c_append(crc, &b[..PAYLOAD]);
        pos += 1;
        for home in homes {
            if home >= geo.total_blocks {
                return Ok(None);
            }
            let mut img = vec![0u8; BLOCK_SIZE];
            store.read_at(&mut img, (geo.journal_start + pos) * BLOCK_SIZE as u64)?;
            crc = crc32c::crc32c_append(crc, &img[..PAYLOAD]);
            crc_v1 = crc32c::crc32c_append(crc_v1, &img);
            out.push((home, img));
            pos += 1;
        }
    }
    Ok(None)
}

/// Write each block home, coalescing runs of consecutive blocks into one write, then flush.
pub(crate) fn write_home<S: BlockStore>(store: &S, blocks: &[(u64, &[u8])]) -> FsResult<()> {
    let mut i = 0;
    while i < blocks.len() {
        let mut j = i + 1;
        while j < blocks.len() && blocks[j].0 == blocks[j - 1].0 + 1 {
            j += 1;
        }
        if j - i == 1 {
            store.write_at(blocks[i].1, blocks[i].0 * BLOCK_SIZE as u64)?;
        } else {
            let mut run = Vec::with_capacity((j - i) * BLOCK_SIZE);
            for (_, img) in &blocks[i..j] {
                run.extend_from_slice(img);
            }
            store.write_at(&run, blocks[i].0 * BLOCK_SIZE as u64)?;
        }
        i = j;
    }
    store.flush()?;
    Ok(())
}

/// Replay the journal's transaction onto the home blocks of an image of format `version`.
/// Returns its sequence number.
pub(crate) fn replay<S: BlockStore>(
    store: &S,
    geo: &Geometry,
    version: u32,
) -> FsResult<Option<u64>> {
    match read_txn(store, geo, version)? {
        None => Ok(None),
        Some((seq, blocks)) => {
            let refs: Vec<(u64, &[u8])> = blocks.iter().map(|(h, b)| (*h, b.as_slice())).collect();
            write_home(store, &refs)?;
            Ok(Some(seq))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn image(home: u64, fill: u8) -> Vec<u8> {
        let mut b = vec![fill; BLOCK_SIZE];
        seal(&mut b, home);
        b
    }

    #[test]
    fn a_transaction_with_an_image_of_another_is_not_replayed() {
        // A torn write can leave a journal slot with an older, validly sealed image of the
        // same home block: the transaction's checksum must see it.
        let geo = Geometry::for_size(8192, None).unwrap();
        let store = MemStore::new(8192 * BLOCK_SIZE as u64);
        let home = geo.data_start;
        let (a, b) = (image(home, 0xA1), image(home, 0xB2));
        write_txn(
            &store,
            &geo,
            5,
            &[(home, &a), (home + 1, &image(home + 1, 3))],
        )
        .unwrap();
        let (seq, blocks) = read_txn(&store, &geo, 2).unwrap().unwrap();
        assert_eq!((seq, blocks[0].1.as_slice()), (5, a.as_slice()));
        // The first image's slot (after the descriptor) now holds the other image.
        store
            .write_at(&b, (geo.journal_start + 1) * BLOCK_SIZE as u64)
            .unwrap();
        assert!(read_txn(&store, &geo, 2).unwrap().is_none());
    }
}
