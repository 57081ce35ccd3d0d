//! Authentication by a shared token, proven by challenge and response: the server sends a
//! random nonce, the client answers with an HMAC-SHA256 of it (bound to its node and mount)
//! under the token. The token never crosses the wire, and an answer is useless for any other
//! nonce.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a challenge nonce.
pub const NONCE_LEN: usize = 32;

fn mac(token: &[u8], nonce: &[u8], node_id: &str, mount_id: u64) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = HmacSha256::new_from_slice(token).expect("HMAC accepts any key length");
    m.update(b"rwxfs-auth-v1\0");
    m.update(nonce);
    m.update(&(node_id.len() as u64).to_le_bytes());
    m.update(node_id.as_bytes());
    m.update(&mount_id.to_le_bytes());
    m
}

/// The client's answer to `nonce`.
pub fn proof(token: &[u8], nonce: &[u8], node_id: &str, mount_id: u64) -> Vec<u8> {
    mac(token, nonce, node_id, mount_id)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// True if `answer` proves the token (compared in constant time).
pub fn verify(token: &[u8], nonce: &[u8], node_id: &str, mount_id: u64, answer: &[u8]) -> bool {
    mac(token, nonce, node_id, mount_id)
        .verify_slice(answer)
        .is_ok()
}

/// A token file's contents: surrounding whitespace (a trailing newline) is not part of it.
pub fn token_from_file(contents: &[u8]) -> Result<Vec<u8>, &'static str> {
    let t = contents.trim_ascii();
    if t.is_empty() {
        return Err("the token file is empty");
    }
    Ok(t.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_token_nonce_and_identity_verify() {
        let n = [7u8; NONCE_LEN];
        let p = proof(b"secret", &n, "node", 9);
        assert!(verify(b"secret", &n, "node", 9, &p));
        assert!(!verify(b"other", &n, "node", 9, &p));
        assert!(!verify(b"secret", &[8u8; NONCE_LEN], "node", 9, &p));
        assert!(!verify(b"secret", &n, "node2", 9, &p));
        assert!(!verify(b"secret", &n, "node", 10, &p));
        assert!(!verify(b"secret", &n, "node", 9, &p[..31]));
        assert!(!p.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn token_files_are_trimmed_and_must_not_be_empty() {
        assert_eq!(token_from_file(b"abc\n"), Ok(b"abc".to_vec()));
        assert!(token_from_file(b" \n").is_err());
    }
}
