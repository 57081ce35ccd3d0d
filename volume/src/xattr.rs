//! Extended attributes: all of an inode's in one checksummed block
//! (`count, then name_len, value_len, name, value` each).

use std::collections::BTreeMap;

use crate::error::{FsError, FsResult};
use crate::layout::{get_u16, put_u16, PAYLOAD};

pub(crate) type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

pub(crate) fn decode(b: &[u8]) -> FsResult<Xattrs> {
    let mut out = BTreeMap::new();
    let n = get_u16(b, 0) as usize;
    let mut off = 2;
    for _ in 0..n {
        if off + 3 > PAYLOAD {
            return Err(FsError::Corrupt("xattr block overrun".into()));
        }
        let nl = b[off] as usize;
        let vl = get_u16(b, off + 1) as usize;
        off += 3;
        if off + nl + vl > PAYLOAD {
            return Err(FsError::Corrupt("xattr block overrun".into()));
        }
        out.insert(
            b[off..off + nl].to_vec(),
            b[off + nl..off + nl + vl].to_vec(),
        );
        off += nl + vl;
    }
    Ok(out)
}

/// Bytes the set takes in its block.
pub(crate) fn encoded_len(x: &Xattrs) -> usize {
    2 + x.iter().map(|(k, v)| 3 + k.len() + v.len()).sum::<usize>()
}

pub(crate) fn encode(x: &Xattrs, b: &mut [u8]) -> FsResult<()> {
    if encoded_len(x) > PAYLOAD {
        return Err(FsError::NoSpace);
    }
    b[..PAYLOAD].fill(0);
    put_u16(b, 0, x.len() as u16);
    let mut off = 2;
    for (k, v) in x {
        b[off] = k.len() as u8;
        put_u16(b, off + 1, v.len() as u16);
        off += 3;
        b[off..off + k.len()].copy_from_slice(k);
        off += k.len();
        b[off..off + v.len()].copy_from_slice(v);
        off += v.len();
    }
    Ok(())
}
