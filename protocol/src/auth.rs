//! Authentication by a shared token, proven both ways by challenge and response, and the
//! secret that lets only a session's own client resume it.
//!
//! The client's first message carries a nonce; the server answers with its own nonce and an
//! HMAC-SHA256 of both under the token (`server_proof`), which the client checks before it
//! proves anything; then the client answers with an HMAC of the server's nonce, bound to its
//! node and mount (`proof`). With TLS, both proofs also cover the TLS session's exporter value
//! (`TLS_EXPORTER_LABEL`), so a proof relayed into another TLS session is worthless. The token
//! never crosses the wire, and an answer is useless for any other nonce.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a challenge nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a session secret.
pub const SECRET_LEN: usize = 32;
/// The TLS exporter label (RFC 5705) of the value proofs are bound to.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-rwxfs-token-proof";
/// Bytes of that exporter value.
pub const TLS_BINDING_LEN: usize = 32;

fn keyed(token: &[u8], domain: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = HmacSha256::new_from_slice(token).expect("HMAC accepts any key length");
    m.update(domain);
    m
}

fn field(m: &mut HmacSha256, bytes: &[u8]) {
    m.update(&(bytes.len() as u64).to_le_bytes());
    m.update(bytes);
}

fn mac(token: &[u8], nonce: &[u8], node_id: &str, mount_id: u64, binding: &[u8]) -> HmacSha256 {
    let mut m = keyed(token, b"rwxfs-auth-v2-client\0");
    field(&mut m, nonce);
    field(&mut m, node_id.as_bytes());
    m.update(&mount_id.to_le_bytes());
    field(&mut m, binding);
    m
}

fn server_mac(token: &[u8], client_nonce: &[u8], nonce: &[u8], binding: &[u8]) -> HmacSha256 {
    let mut m = keyed(token, b"rwxfs-auth-v2-server\0");
    field(&mut m, client_nonce);
    field(&mut m, nonce);
    field(&mut m, binding);
    m
}

/// The client's answer to the server's `nonce`. `binding`: the TLS exporter value of the
/// connection, empty without TLS.
pub fn proof(token: &[u8], nonce: &[u8], node_id: &str, mount_id: u64, binding: &[u8]) -> Vec<u8> {
    mac(token, nonce, node_id, mount_id, binding)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// True if `answer` proves the token (compared in constant time).
pub fn verify(
    token: &[u8],
    nonce: &[u8],
    node_id: &str,
    mount_id: u64,
    binding: &[u8],
    answer: &[u8],
) -> bool {
    mac(token, nonce, node_id, mount_id, binding)
        .verify_slice(answer)
        .is_ok()
}

/// The server's proof that it holds the token: over the client's nonce and its own.
pub fn server_proof(token: &[u8], client_nonce: &[u8], nonce: &[u8], binding: &[u8]) -> Vec<u8> {
    server_mac(token, client_nonce, nonce, binding)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// True if `answer` is the server's proof (compared in constant time).
pub fn verify_server(
    token: &[u8],
    client_nonce: &[u8],
    nonce: &[u8],
    binding: &[u8],
    answer: &[u8],
) -> bool {
    server_mac(token, client_nonce, nonce, binding)
        .verify_slice(answer)
        .is_ok()
}

/// Fresh random bytes (a nonce or a secret).
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b)
}

/// A session's secret: only its client and the server hold it. Never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SessionSecret(Vec<u8>);

impl SessionSecret {
    /// A new random secret, or why the system gave no randomness.
    pub fn generate() -> Result<SessionSecret, String> {
        random_bytes(SECRET_LEN).map(SessionSecret)
    }

    /// As kept in the server's session log.
    pub fn from_bytes(b: Vec<u8>) -> SessionSecret {
        SessionSecret(b)
    }

    /// The bytes, to send in `Welcome` and keep in the session log.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True if `offered` is this secret, compared in constant time. An empty secret (a
    /// session restored from a log that had none) matches nothing.
    pub fn matches(&self, offered: &[u8]) -> bool {
        if self.0.is_empty() || offered.len() != self.0.len() {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(offered)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
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
    fn only_the_right_token_nonce_identity_and_binding_verify() {
        let n = [7u8; NONCE_LEN];
        let p = proof(b"secret", &n, "node", 9, b"tls-a");
        assert!(verify(b"secret", &n, "node", 9, b"tls-a", &p));
        assert!(!verify(b"other", &n, "node", 9, b"tls-a", &p));
        assert!(!verify(
            b"secret",
            &[8u8; NONCE_LEN],
            "node",
            9,
            b"tls-a",
            &p
        ));
        assert!(!verify(b"secret", &n, "node2", 9, b"tls-a", &p));
        assert!(!verify(b"secret", &n, "node", 10, b"tls-a", &p));
        assert!(!verify(b"secret", &n, "node", 9, b"tls-b", &p));
        assert!(!verify(b"secret", &n, "node", 9, b"", &p));
        assert!(!verify(b"secret", &n, "node", 9, b"tls-a", &p[..31]));
        assert!(!p.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn the_server_proof_is_its_own_and_bound_to_both_nonces() {
        let (c, s) = ([1u8; NONCE_LEN], [2u8; NONCE_LEN]);
        let p = server_proof(b"tok", &c, &s, b"");
        assert!(verify_server(b"tok", &c, &s, b"", &p));
        assert!(!verify_server(b"bad", &c, &s, b"", &p));
        assert!(!verify_server(b"tok", &s, &c, b"", &p));
        assert!(!verify_server(b"tok", &c, &s, b"tls", &p));
        // A client's proof is never a server's, even over the same bytes.
        assert!(!verify_server(
            b"tok",
            &c,
            &s,
            b"",
            &proof(b"tok", &s, "", 0, b"")
        ));
    }

    #[test]
    fn session_secrets_match_only_themselves_and_never_print() {
        let s = SessionSecret::generate().unwrap();
        assert_eq!(s.as_bytes().len(), SECRET_LEN);
        assert!(s.matches(s.as_bytes()));
        let mut other = s.as_bytes().to_vec();
        other[31] ^= 1;
        assert!(!s.matches(&other));
        assert!(!s.matches(&other[..31]));
        assert!(!s.matches(&[]));
        assert!(!SessionSecret::default().matches(&[]));
        assert_ne!(s, SessionSecret::generate().unwrap());
        assert_eq!(format!("{s:?}"), "SessionSecret(..)");
    }

    #[test]
    fn token_files_are_trimmed_and_must_not_be_empty() {
        assert_eq!(token_from_file(b"abc\n"), Ok(b"abc".to_vec()));
        assert!(token_from_file(b" \n").is_err());
    }
}
