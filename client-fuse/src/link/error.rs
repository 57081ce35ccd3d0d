//! Why the link failed: a call that got no reply (`LinkError`), or a connection that could
//! not be made or taken back (`DialError`). The messages are what a user reads at mount time.

use protocol::codec::ProtoError;

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkError {
    /// The link is closed (unmounting) or the server refused to take the mount back.
    #[error("the link to the server is closed")]
    Closed,
    /// The request could not be encoded.
    #[error("the request could not be encoded")]
    Encode,
}

/// Why a connection to the server could not be made, greeted or recovered.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The server could not be reached, or TLS could not be set up with it.
    #[error("{0}")]
    Transport(String),
    /// The connection failed while greeting or recovering.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be made or read.
    #[error("{0}")]
    Frame(#[from] ProtoError),
    /// The server sent nothing usable in time.
    #[error("no answer from the server: {0}")]
    NoAnswer(ProtoError),
    /// The answer was too long to be rwxfs: the server most likely speaks TLS.
    #[error("the server does not answer in plain rwxfs (does it use TLS? then give --tls-ca)")]
    NotPlain,
    /// The export has a token and none was given.
    #[error("the server requires a token: give the export's token file (--token-file)")]
    TokenRequired,
    /// A token was given and the server did not prove it holds it.
    #[error(
        "refusing the server: it did not prove it holds the token \
         (it has none, or it is not the server it claims to be)"
    )]
    ServerUnproven,
    /// The server's proof of the token does not check.
    #[error(
        "refusing the server: its proof of the token is wrong \
         (a different token, or not the server it claims to be)"
    )]
    ServerProofWrong,
    /// The server refused the mount, for this reason.
    #[error("the server refused the mount: {0}")]
    Refused(String),
    /// The server refused a status query, for this reason.
    #[error("the server refused: {0}")]
    StatusRefused(String),
    /// The server makes the mount wait, and it asked not to.
    #[error("the server refused the mount (--no-wait): {0}")]
    MustWait(String),
    /// A message that has no place at this point of the exchange.
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
    /// A call of the recovery (a replay's commit, the end of a reclaim) was refused.
    #[error("{during}: errno {errno}")]
    Recovery {
        /// Which step of the recovery.
        during: &'static str,
        /// The server's answer.
        errno: i32,
    },
    /// The link's threads could not be started.
    #[error("cannot start the link's threads: {0}")]
    Thread(std::io::Error),
    /// The server is a standby: another serves the volume.
    #[error("a standby server (the volume is served by {0})")]
    Standby(String),
    /// Each of several servers failed, for these reasons.
    #[error("no server took the mount: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Every(Vec<DialError>),
    /// Dialing `addr` failed (the address prefixes the reason).
    #[error("{addr}: {source}")]
    At {
        /// The address dialed.
        addr: String,
        /// Why it failed.
        #[source]
        source: Box<DialError>,
    },
}

impl DialError {
    /// This error, said of the server at `addr`.
    pub(super) fn at(self, addr: &str) -> DialError {
        DialError::At {
            addr: addr.to_string(),
            source: Box::new(self),
        }
    }
}
