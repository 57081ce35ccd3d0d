//! Dialing the server: TCP (or TLS over it), then the greeting — a new session (`Hello`) or
//! one taken back (`Resume`) — with the token's challenge both ways when the export has one.
//! A server must prove the token before the client proves anything.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol::codec::{decode_body, encode_frame, read_frame, ProtoError};
use protocol::{ClientMsg, ServerMsg, PROTOCOL_VERSION};

use super::DialError;
use crate::transport::Stream;

/// How long the server has to answer a greeting.
const GREETING: Duration = Duration::from_secs(10);
/// As `GREETING`, when other servers may be serving meanwhile: a paused server that still
/// accepts connections must not hold a mount back from the one that took over.
const GREETING_OF_SEVERAL: Duration = Duration::from_secs(4);

/// Who this mount is to the server, and how it reaches it: the same on every connection.
pub(super) struct Hello {
    /// The servers' addresses, tried in turn: one active, the others standbys that take
    /// over from it (`HOST1:PORT,HOST2:PORT`).
    pub addrs: Vec<String>,
    /// The address the last connection was made to.
    pub current: AtomicUsize,
    pub node_id: String,
    pub mount_id: u64,
    pub read_only: bool,
    /// The export mounted; empty for the whole volume.
    pub export: String,
    /// The export's shared secret, proven on every (re)connection.
    pub token: Option<Vec<u8>>,
    /// TLS, if the server speaks it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What a greeting brings back.
pub(super) struct Greeted {
    pub stream: Stream,
    /// The session the server knows this mount by (the one resumed, or a new one).
    pub session: u64,
    pub lease_secs: u32,
    /// The server's start (`Welcome::boot`): another value than before means a restart.
    pub boot: u64,
    /// The session's secret if the session is new; empty if resumed.
    pub secret: Vec<u8>,
    /// The server before this one stopped cleanly, having committed everything.
    pub clean_restart: bool,
}

fn send_msg(stream: &mut Stream, msg: &ClientMsg) -> Result<(), DialError> {
    stream.write_all(&encode_frame(msg, &[])?)?;
    Ok(())
}

impl Hello {
    /// The address the connection is made to now.
    pub(super) fn addr(&self) -> &str {
        &self.addrs[self.current.load(Ordering::Relaxed) % self.addrs.len()]
    }

    fn greeting(&self) -> Duration {
        match self.addrs.len() {
            1 => GREETING,
            _ => GREETING_OF_SEVERAL,
        }
    }
}

/// The addresses in `list` (`HOST:PORT` or several, comma-separated), or why there are none.
pub(super) fn addresses(list: &str) -> Result<Vec<String>, DialError> {
    let addrs: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(DialError::Transport(format!(
            "{list:?}: no server address (HOST:PORT, or several separated by commas)"
        )));
    }
    Ok(addrs)
}

/// The next greeting message from the server (waiting at most `timeout`, or forever).
fn recv_msg(stream: &mut Stream, timeout: Option<Duration>) -> Result<ServerMsg, DialError> {
    stream.set_read_timeout(timeout);
    let body = read_frame(stream).map_err(DialError::NoAnswer)?;
    stream.set_read_timeout(None);
    Ok(decode_body::<ServerMsg>(&body).map(|(m, _)| m)?)
}

/// Answer a challenge, if that is what `msg` is; returns the message after it. With a
/// token, the server must first prove it holds it too (over `my_nonce`, the client's nonce
/// in its first message): a server that does not is refused before the client proves
/// anything.
fn answer_challenge(
    stream: &mut Stream,
    msg: ServerMsg,
    token: Option<&[u8]>,
    my_nonce: &[u8],
    node_id: &str,
    mount_id: u64,
) -> Result<ServerMsg, DialError> {
    let ServerMsg::Challenge { nonce, mac } = msg else {
        // A refusal or a standby's answer admits nothing: no proof is owed for it.
        let harmless = matches!(msg, ServerMsg::Refused { .. } | ServerMsg::Standby { .. });
        if token.is_some() && !harmless {
            return Err(DialError::ServerUnproven);
        }
        return Ok(msg);
    };
    let token = token.ok_or(DialError::TokenRequired)?;
    let binding = stream.binding().map_err(DialError::Transport)?;
    if !protocol::auth::verify_server(token, my_nonce, &nonce, &binding, &mac) {
        return Err(DialError::ServerProofWrong);
    }
    let mac = protocol::auth::proof(token, &nonce, node_id, mount_id, &binding);
    send_msg(stream, &ClientMsg::Proof { mac })?;
    recv_msg(stream, Some(GREETING))
}

fn nonce() -> Result<Vec<u8>, DialError> {
    protocol::auth::random_bytes(protocol::auth::NONCE_LEN).map_err(DialError::Transport)
}

/// Dial and greet the servers in turn, from the one after the last connection's when `next`
/// (that one just failed) or from it, until one welcomes the mount; resuming `resume` (a
/// session and its secret) if given. While a server says the mount must wait, `pending`
/// hears why and the wait goes on, unless `no_wait`. A standby answers at once and the next
/// address is tried.
pub(super) fn dial(
    h: &Hello,
    resume: Option<(u64, Vec<u8>)>,
    next: bool,
    no_wait: bool,
    pending: &dyn Fn(&str),
) -> Result<Greeted, DialError> {
    let n = h.addrs.len();
    let first = h.current.load(Ordering::Relaxed) + usize::from(next);
    let mut errors = Vec::new();
    for i in (first..first + n).map(|i| i % n) {
        match dial_one(h, &h.addrs[i], resume.clone(), no_wait, pending) {
            Ok(g) => {
                h.current.store(i, Ordering::Relaxed);
                return Ok(g);
            }
            Err(e) if n == 1 => return Err(e),
            Err(e) => errors.push(e.at(&h.addrs[i])),
        }
    }
    Err(DialError::Every(errors))
}

fn dial_one(
    h: &Hello,
    addr: &str,
    resume: Option<(u64, Vec<u8>)>,
    no_wait: bool,
    pending: &dyn Fn(&str),
) -> Result<Greeted, DialError> {
    let mut stream = Stream::connect(addr, h.tls.as_ref()).map_err(DialError::Transport)?;
    let nonce = nonce()?;
    let (version, node_id, mount_id, read_only) =
        (PROTOCOL_VERSION, h.node_id.clone(), h.mount_id, h.read_only);
    let hello = match resume {
        None => ClientMsg::Hello {
            version,
            node_id,
            mount_id,
            read_only,
            nonce: nonce.clone(),
            export: h.export.clone(),
        },
        Some((session, secret)) => ClientMsg::Resume {
            version,
            node_id,
            mount_id,
            read_only,
            session,
            secret,
            nonce: nonce.clone(),
            export: h.export.clone(),
        },
    };
    send_msg(&mut stream, &hello).map_err(|e| e.at(addr))?;
    let first = recv_msg(&mut stream, Some(h.greeting())).map_err(|e| match e {
        DialError::NoAnswer(ProtoError::TooLarge(_)) if h.tls.is_none() => {
            DialError::NotPlain.at(addr)
        }
        e => e.at(addr),
    })?;
    let token = h.token.as_deref();
    let msg = answer_challenge(&mut stream, first, token, &nonce, &h.node_id, h.mount_id)
        .map_err(|e| e.at(addr))?;
    welcome(stream, msg, addr, no_wait, pending)
}

/// Wait out `Pending` answers (unless `no_wait`) until the server welcomes or refuses.
fn welcome(
    mut stream: Stream,
    mut msg: ServerMsg,
    addr: &str,
    no_wait: bool,
    pending: &dyn Fn(&str),
) -> Result<Greeted, DialError> {
    loop {
        match msg {
            ServerMsg::Welcome {
                session,
                lease_secs,
                boot,
                secret,
                clean_restart,
                ..
            } => {
                return Ok(Greeted {
                    stream,
                    session,
                    lease_secs,
                    boot,
                    secret,
                    clean_restart,
                })
            }
            ServerMsg::Refused { reason } => return Err(DialError::Refused(reason)),
            ServerMsg::Standby { active } => return Err(DialError::Standby(active)),
            ServerMsg::Pending { reason } if no_wait => return Err(DialError::MustWait(reason)),
            ServerMsg::Pending { reason } => {
                pending(&reason);
                msg = recv_msg(&mut stream, None).map_err(|e| e.at(addr))?;
            }
            other => return Err(DialError::Unexpected(format!("{other:?}")).at(addr)),
        }
    }
}

/// What `rwxfs status` hears from a server.
#[derive(Debug)]
pub enum ServerStatus {
    /// The active server's sessions.
    Active(Vec<protocol::SessionStatus>),
    /// A standby, and who it says is active.
    Standby(String),
}

impl ServerStatus {
    /// The sessions an active server listed; none for a standby.
    pub fn sessions(&self) -> &[protocol::SessionStatus] {
        match self {
            ServerStatus::Active(list) => list,
            ServerStatus::Standby(_) => &[],
        }
    }
}

/// `rwxfs status`: the server's sessions, or that it is a standby.
pub fn query_status(
    addr: &str,
    token: Option<&[u8]>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<ServerStatus, DialError> {
    let mut stream = Stream::connect(addr, tls).map_err(DialError::Transport)?;
    let nonce = nonce()?;
    let status = ClientMsg::Status {
        version: PROTOCOL_VERSION,
        nonce: nonce.clone(),
    };
    send_msg(&mut stream, &status)?;
    let first = recv_msg(&mut stream, Some(GREETING))?;
    match answer_challenge(&mut stream, first, token, &nonce, "", 0)? {
        ServerMsg::Status(list) => Ok(ServerStatus::Active(list)),
        ServerMsg::Standby { active } => Ok(ServerStatus::Standby(active)),
        ServerMsg::Refused { reason } => Err(DialError::StatusRefused(reason)),
        other => Err(DialError::Unexpected(format!("{other:?}"))),
    }
}

/// `rwxfs export`: run `cmd` on the server with its administrator's `token`; every export
/// afterwards. Waits as long as the command takes (a delete empties the export first).
pub fn administer(
    addr: &str,
    token: &[u8],
    tls: Option<&Arc<rustls::ClientConfig>>,
    cmd: protocol::ExportCmd,
) -> Result<Vec<protocol::ExportInfo>, DialError> {
    match admin_call(addr, token, tls, cmd)? {
        ServerMsg::Exports(Ok(list)) => Ok(list),
        ServerMsg::Exports(Err(reason)) => Err(DialError::StatusRefused(reason)),
        other => Err(DialError::Unexpected(format!("{other:?}"))),
    }
}

/// The whole volume's size and what is free in it, asked as its administrator.
pub fn volume_space(
    addr: &str,
    token: &[u8],
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<protocol::VolumeSpace, DialError> {
    match admin_call(addr, token, tls, protocol::ExportCmd::Space)? {
        ServerMsg::Space(Ok(space)) => Ok(space),
        ServerMsg::Space(Err(reason)) => Err(DialError::StatusRefused(reason)),
        other => Err(DialError::Unexpected(format!("{other:?}"))),
    }
}

/// One administrator's connection: the token proved both ways, `cmd` sent, its answer.
fn admin_call(
    addr: &str,
    token: &[u8],
    tls: Option<&Arc<rustls::ClientConfig>>,
    cmd: protocol::ExportCmd,
) -> Result<ServerMsg, DialError> {
    let mut stream = Stream::connect(addr, tls).map_err(DialError::Transport)?;
    let nonce = nonce()?;
    let admin = ClientMsg::Admin {
        version: PROTOCOL_VERSION,
        nonce: nonce.clone(),
        cmd,
    };
    send_msg(&mut stream, &admin)?;
    let first = recv_msg(&mut stream, Some(GREETING)).map_err(|e| match e {
        DialError::NoAnswer(ProtoError::TooLarge(_)) if tls.is_none() => DialError::NotPlain,
        e => e,
    })?;
    let (theirs, mac) = match first {
        ServerMsg::Challenge { nonce, mac } => (nonce, mac),
        ServerMsg::Refused { reason } => return Err(DialError::StatusRefused(reason)),
        other => return Err(DialError::Unexpected(format!("{other:?}"))),
    };
    let binding = stream.binding().map_err(DialError::Transport)?;
    if !protocol::auth::verify_server(token, &nonce, &theirs, &binding, &mac) {
        return Err(DialError::ServerProofWrong);
    }
    let mac = protocol::auth::proof(token, &theirs, "", 0, &binding);
    send_msg(&mut stream, &ClientMsg::Proof { mac })?;
    match recv_msg(&mut stream, None)? {
        ServerMsg::Refused { reason } => Err(DialError::StatusRefused(reason)),
        msg => Ok(msg),
    }
}
