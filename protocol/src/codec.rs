//! Frame bodies: `[header length u32 LE][bincode header][raw bulk bytes]`. The only place
//! bincode is named, so swapping it touches one file. Decoding never panics and never
//! allocates more than the frame it was given.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Largest frame body accepted: a 1 MiB write plus its header, with room to spare.
pub const MAX_FRAME: usize = (1 << 20) + 64 * 1024;

/// Why a frame could not be made or read: one that is too large or too short, a header
/// that does not decode (a peer speaking something else), or the connection itself.
#[derive(Debug, Error)]
pub enum ProtoError {
    /// A frame over `MAX_FRAME` bytes, sent or announced.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// A frame body shorter than the header length it announces.
    #[error("frame too short for its header")]
    Truncated,
    /// A header that is not a message of this protocol.
    #[error("undecodable header: {0}")]
    Malformed(String),
    /// A message that could not be encoded (over the size limit).
    #[error("encoding failed: {0}")]
    Encode(String),
    /// Reading or writing the connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<MAX_FRAME>()
}

/// The bincode encoding of `msg`, as frames carry it.
pub fn encode_header<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    bincode::serde::encode_to_vec(msg, config()).map_err(|e| ProtoError::Encode(e.to_string()))
}

/// A whole frame, length prefix included, ready for the socket.
pub fn encode_frame<T: Serialize>(msg: &T, bulk: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let hdr = encode_header(msg)?;
    let body = 4 + hdr.len() + bulk.len();
    if body > MAX_FRAME {
        return Err(ProtoError::TooLarge(body));
    }
    let mut out = Vec::with_capacity(4 + body);
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&(hdr.len() as u32).to_le_bytes());
    out.extend_from_slice(&hdr);
    out.extend_from_slice(bulk);
    Ok(out)
}

/// Length prefix and header of a frame whose bulk bytes the caller sends separately.
pub fn encode_frame_head<T: Serialize>(msg: &T, bulk_len: usize) -> Result<Vec<u8>, ProtoError> {
    let hdr = encode_header(msg)?;
    let body = 4 + hdr.len() + bulk_len;
    if body > MAX_FRAME {
        return Err(ProtoError::TooLarge(body));
    }
    let mut out = Vec::with_capacity(8 + hdr.len());
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&(hdr.len() as u32).to_le_bytes());
    out.extend_from_slice(&hdr);
    Ok(out)
}

/// Split a frame body (length prefix already removed) into its header and bulk bytes.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<(T, &[u8]), ProtoError> {
    if body.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge(body.len()));
    }
    if body.len() < 4 {
        return Err(ProtoError::Truncated);
    }
    let hlen = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if hlen > body.len() - 4 {
        return Err(ProtoError::Truncated);
    }
    let hdr = &body[4..4 + hlen];
    let (msg, used) = bincode::serde::decode_from_slice::<T, _>(hdr, config())
        .map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if used != hlen {
        return Err(ProtoError::Malformed(format!(
            "{} trailing header bytes",
            hlen - used
        )));
    }
    Ok((msg, &body[4 + hlen..]))
}

/// Blocking read of one frame body from a stream (the FUSE side is synchronous).
pub fn read_frame<R: std::io::Read>(r: &mut R) -> Result<Vec<u8>, ProtoError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(ProtoError::TooLarge(n));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::*;

    fn body_of(frame: &[u8]) -> &[u8] {
        &frame[4..]
    }

    #[test]
    fn golden_hello() {
        let m = ClientMsg::Hello {
            version: 1,
            node_id: "n1".into(),
            mount_id: 7,
            read_only: false,
            nonce: vec![0xAB],
            export: String::new(),
        };
        let f = encode_frame(&m, &[]).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0, 0, 0, 48,                // frame length, big-endian
            44, 0, 0, 0,                // header length
            0, 0, 0, 0,                 // ClientMsg::Hello (variant 0)
            1, 0, 0, 0,                 // version 1
            2, 0, 0, 0, 0, 0, 0, 0,     // node_id length
            b'n', b'1',                 // node_id
            7, 0, 0, 0, 0, 0, 0, 0,     // mount_id
            0,                          // read_only
            1, 0, 0, 0, 0, 0, 0, 0,     // nonce length
            0xAB,                       // nonce
            0, 0, 0, 0, 0, 0, 0, 0,     // export length (the whole volume)
        ];
        assert_eq!(f, want);
        let (back, bulk): (ClientMsg, _) = decode_body(body_of(&f)).unwrap();
        assert_eq!(back, m);
        assert!(bulk.is_empty());
    }

    #[test]
    fn golden_write_call_carries_raw_bulk() {
        let m = ClientMsg::Call {
            id: 5,
            req: Request::Write {
                ino: 9,
                offset: 4096,
                kill_priv: true,
            },
        };
        let f = encode_frame(&m, b"DATA").unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0, 0, 0, 41,                // frame length
            33, 0, 0, 0,                // header length
            1, 0, 0, 0,                 // ClientMsg::Call
            5, 0, 0, 0, 0, 0, 0, 0,     // id
            17, 0, 0, 0,                // Request::Write (variant 17)
            9, 0, 0, 0, 0, 0, 0, 0,     // ino
            0, 16, 0, 0, 0, 0, 0, 0,    // offset 4096
            1,                          // kill_priv
            b'D', b'A', b'T', b'A',     // bulk bytes, not serde-encoded
        ];
        assert_eq!(f, want);
        let (back, bulk): (ClientMsg, _) = decode_body(body_of(&f)).unwrap();
        assert_eq!(back, m);
        assert_eq!(bulk, b"DATA");
    }

    #[test]
    fn golden_resume_and_ack() {
        let m = ClientMsg::Resume {
            version: 1,
            node_id: "n".into(),
            mount_id: 2,
            read_only: true,
            session: 9,
            secret: vec![0x5E],
            nonce: vec![],
            export: String::new(),
        };
        let f = encode_frame(&m, &[]).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0, 0, 0, 63,
            59, 0, 0, 0,
            3, 0, 0, 0,                 // ClientMsg::Resume (variant 3)
            1, 0, 0, 0,                 // version
            1, 0, 0, 0, 0, 0, 0, 0,     // node_id length
            b'n',
            2, 0, 0, 0, 0, 0, 0, 0,     // mount_id
            1,                          // read_only
            9, 0, 0, 0, 0, 0, 0, 0,     // session
            1, 0, 0, 0, 0, 0, 0, 0,     // secret length
            0x5E,                       // secret
            0, 0, 0, 0, 0, 0, 0, 0,     // nonce length (empty)
            0, 0, 0, 0, 0, 0, 0, 0,     // export length (the whole volume)
        ];
        assert_eq!(f, want);
        let ack = encode_frame(&ClientMsg::Ack { below: 300 }, &[]).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0, 0, 0, 16,
            12, 0, 0, 0,
            4, 0, 0, 0,                 // ClientMsg::Ack
            44, 1, 0, 0, 0, 0, 0, 0,    // below 300
        ];
        assert_eq!(ack, want);
        let bye = encode_frame(&ClientMsg::Goodbye, &[]).unwrap();
        assert_eq!(bye, vec![0, 0, 0, 8, 4, 0, 0, 0, 5, 0, 0, 0]);
    }

    #[test]
    fn golden_error_reply() {
        let m = ServerMsg::Reply {
            id: 3,
            result: Err(crate::ErrorCode::NotFound),
        };
        let f = encode_frame(&m, &[]).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0, 0, 0, 24,
            20, 0, 0, 0,
            2, 0, 0, 0,                 // ServerMsg::Reply
            3, 0, 0, 0, 0, 0, 0, 0,     // id
            1, 0, 0, 0,                 // Err
            2, 0, 0, 0,                 // ENOENT
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn refuses_oversized_and_truncated() {
        assert!(matches!(
            decode_body::<ClientMsg>(&[1, 0]),
            Err(ProtoError::Truncated)
        ));
        assert!(matches!(
            decode_body::<ClientMsg>(&[200, 0, 0, 0, 1]),
            Err(ProtoError::Truncated)
        ));
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read_frame(&mut r), Err(ProtoError::TooLarge(_))));
        // A string length claiming 2^60 bytes must be refused, not allocated.
        let mut body = vec![0u8; 4];
        let hdr = [0u8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        body[0] = hdr.len() as u8;
        body.extend_from_slice(&hdr);
        assert!(matches!(
            decode_body::<ClientMsg>(&body),
            Err(ProtoError::Malformed(_))
        ));
    }

    /// Cases per fuzz property: `RWXFS_FUZZ_CASES` (CI runs the default, a bounded time).
    fn fuzz_cases() -> u32 {
        std::env::var("RWXFS_FUZZ_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2048)
    }

    /// Valid frames of many kinds, as the fuzzer's seeds.
    fn seeds() -> Vec<Vec<u8>> {
        use crate::messages::Push;
        let calls = [
            ClientMsg::Hello {
                version: PROTOCOL_VERSION,
                node_id: "node-a".into(),
                mount_id: 7,
                read_only: false,
                nonce: vec![3; 32],
                export: String::new(),
            },
            ClientMsg::Resume {
                version: PROTOCOL_VERSION,
                node_id: "n".into(),
                mount_id: 1,
                read_only: true,
                session: 99,
                secret: vec![4; 32],
                nonce: vec![5; 32],
                export: String::new(),
            },
            ClientMsg::Ack { below: 1 << 40 },
            ClientMsg::Proof { mac: vec![1; 32] },
            ClientMsg::Call {
                id: 3,
                req: Request::Lookup {
                    parent: 1,
                    name: b"a-name".to_vec(),
                },
            },
            ClientMsg::Call {
                id: 4,
                req: Request::Write {
                    ino: 5,
                    offset: 4096,
                    kill_priv: false,
                },
            },
            ClientMsg::Call {
                id: 5,
                req: Request::Setlk {
                    ino: 5,
                    owner: 9,
                    range: crate::LockRange {
                        start: 0,
                        end: u64::MAX,
                    },
                    kind: crate::LockKind::Write,
                    pid: 4,
                    wait: true,
                },
            },
            ClientMsg::Call {
                id: 6,
                req: Request::Rename {
                    parent: 1,
                    name: b"x".to_vec(),
                    newparent: 2,
                    newname: b"y".to_vec(),
                    flags: crate::RenameFlags {
                        noreplace: false,
                        exchange: true,
                    },
                },
            },
        ];
        let mut out: Vec<Vec<u8>> = calls
            .iter()
            .map(|m| encode_frame(m, b"bulk bytes").unwrap())
            .collect();
        let replies = [
            ServerMsg::Welcome {
                version: PROTOCOL_VERSION,
                session: 1,
                lease_secs: 15,
                boot: 2,
                secret: vec![6; 32],
                clean_restart: true,
            },
            ServerMsg::Push(Push::InvalEntry {
                parent: 1,
                name: b"n".to_vec(),
            }),
            ServerMsg::Reply {
                id: 1,
                result: Ok(Response::Names(vec![b"a".to_vec(), b"b".to_vec()])),
            },
            ServerMsg::Reply {
                id: 2,
                result: Err(crate::ErrorCode::NotFound),
            },
        ];
        out.extend(replies.iter().map(|m| encode_frame(m, &[]).unwrap()));
        out
    }

    fn decode_all_ways(frame: &[u8]) {
        let _ = read_frame(&mut &frame[..]);
        let body = frame.get(4..).unwrap_or_default();
        let _ = decode_body::<ClientMsg>(body);
        let _ = decode_body::<ServerMsg>(body);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(fuzz_cases()))]

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_body::<ClientMsg>(&bytes);
            let _ = decode_body::<ServerMsg>(&bytes);
            let mut framed = (bytes.len() as u32).to_le_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode_body::<ClientMsg>(&framed);
            decode_all_ways(&framed);
        }

        /// Valid frames with bytes changed, cut short, or their lengths lied about: each
        /// decodes to something or fails with an error; nothing panics or allocates wildly.
        #[test]
        fn mutated_valid_frames_decode_or_fail_cleanly(
            seed in 0usize..12,
            flips in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 0..8),
            cut in proptest::option::of(proptest::num::usize::ANY),
            lie in proptest::option::of((0usize..3, proptest::num::u32::ANY)),
        ) {
            let seeds = seeds();
            let mut f = seeds[seed % seeds.len()].clone();
            for (at, b) in flips {
                let n = f.len();
                f[at % n] ^= b;
            }
            if let Some((which, v)) = lie {
                // The frame length, the header length, or a length inside the header.
                let at = [0usize, 4, 12][which];
                if f.len() >= at + 4 {
                    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            if let Some(c) = cut {
                f.truncate(c % (f.len() + 1));
            }
            decode_all_ways(&f);
        }
    }
}
