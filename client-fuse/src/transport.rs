//! The byte stream under a mount's link: plain TCP, or TLS over it. One thread reads while
//! others write; with TLS both share one rustls connection, so neither may hold it across
//! socket I/O (a writer blocked on a full socket must not stop the reader from draining).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// A connection to the server.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, shared by the reading and the writing threads.
    Tls(Arc<TlsStream>),
}

/// One TLS connection, read by one thread and written by others.
pub struct TlsStream {
    sock: TcpStream,
    conn: Mutex<rustls::ClientConnection>,
    /// Held while TLS records go to the socket, taken before `conn` is let go, so records
    /// reach the wire in the order they were made.
    wire: Mutex<()>,
    /// Bytes read from the socket that rustls has not taken yet (it takes no more while its
    /// decrypted data waits to be read). Only the reading thread uses it.
    raw: Mutex<Vec<u8>>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client TLS configuration trusting the certificates in `ca_file` (PEM): the server's own
/// self-signed certificate, or the authority that signed it.
pub fn client_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem =
        std::fs::read(ca_file).map_err(|e| format!("TLS CA file {}: {e}", ca_file.display()))?;
    client_config_pem(&pem, &format!("TLS CA file {}", ca_file.display()))
}

/// As `client_config`, from the PEM text itself; `what` names it in errors.
pub fn client_config_pem(pem: &[u8], what: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in it"));
    }
    for c in certs {
        roots.add(c).map_err(|e| format!("{what}: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Stream {
    /// Connect to HOST:PORT; with `tls`, complete a TLS handshake that verifies the server
    /// against the configured roots, for the name or address in `addr`.
    pub fn connect(addr: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Stream, String> {
        let sock_addr = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr}: no address"))?;
        let mut sock = TcpStream::connect_timeout(&sock_addr, Duration::from_secs(10))
            .map_err(|e| format!("cannot reach the server at {addr}: {e}"))?;
        sock.set_nodelay(true).ok();
        let Some(config) = tls else {
            return Ok(Stream::Plain(sock));
        };
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(addr);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{addr}: not a TLS server name: {e}"))?;
        let mut conn = rustls::ClientConnection::new(config.clone(), name)
            .map_err(|e| format!("{addr}: TLS: {e}"))?;
        // Frames of up to a MiB are handed over whole; records go out right after.
        conn.set_buffer_limit(None);
        sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| format!("{addr}: TLS handshake failed: {e}"))?;
        }
        sock.set_read_timeout(None).ok();
        Ok(Stream::Tls(Arc::new(TlsStream {
            sock,
            conn: Mutex::new(conn),
            wire: Mutex::new(()),
            raw: Mutex::new(Vec::new()),
        })))
    }

    /// Another handle on the same connection (one thread reads, others write).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Plain(s) => Stream::Plain(s.try_clone()?),
            Stream::Tls(t) => Stream::Tls(t.clone()),
        })
    }

    /// Close both directions: a thread blocked reading wakes up.
    pub fn shutdown(&self) {
        let sock = match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        };
        let _ = sock.shutdown(Shutdown::Both);
    }

    /// The TLS exporter value token proofs are bound to (`protocol::auth`); empty without TLS.
    pub fn binding(&self) -> Result<Vec<u8>, String> {
        let Stream::Tls(t) = self else {
            return Ok(Vec::new());
        };
        relock(&t.conn)
            .export_keying_material(
                vec![0u8; protocol::auth::TLS_BINDING_LEN],
                protocol::auth::TLS_EXPORTER_LABEL,
                None,
            )
            .map_err(|e| format!("TLS exporter: {e}"))
    }

    /// How long a read may wait (`None`: for ever).
    pub fn set_read_timeout(&self, d: Option<Duration>) {
        let sock = match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        };
        sock.set_read_timeout(d).ok();
    }
}

impl TlsStream {
    /// Send what rustls has ready, in order, without holding the connection.
    fn flush_records(&self, mut conn: MutexGuard<'_, rustls::ClientConnection>) -> io::Result<()> {
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        let _order = relock(&self.wire);
        drop(conn);
        (&self.sock).write_all(&out)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = match self {
            Stream::Plain(s) => return s.read(buf),
            Stream::Tls(t) => t.clone(),
        };
        let mut raw = relock(&t.raw);
        loop {
            let mut c = relock(&t.conn);
            match c.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !raw.is_empty() {
                // Nothing decrypted is waiting, so rustls takes at least one more record.
                let mut rd = &raw[..];
                let taken = c.read_tls(&mut rd)?;
                raw.drain(..taken);
                c.process_new_packets().map_err(io::Error::other)?;
                if c.wants_write() {
                    t.flush_records(c)?;
                }
                continue;
            }
            drop(c);
            // Read straight into the spare room of `raw` (it is empty here): no copy.
            raw.resize(64 * 1024, 0);
            let n = (&t.sock).read(&mut raw[..]);
            raw.truncate(*n.as_ref().unwrap_or(&0));
            if n? == 0 {
                return Ok(0);
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf),
            Stream::Tls(t) => {
                let mut c = relock(&t.conn);
                c.writer().write_all(buf)?;
                t.flush_records(c)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
