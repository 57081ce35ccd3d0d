//! `rwxfs serve` bounds: what one client, or many, may take of the server.

use server::ServerConfig;

#[derive(clap::Args, Debug, Clone)]
pub struct Limits {
    /// Most client connections open at once; past it new ones are refused.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Most connections in their handshake at once (TLS included); past it, refused.
    #[arg(long, default_value_t = 64)]
    pub max_handshakes: usize,
    /// Most sessions (mounts, connected or waiting out their lease); past it, refused.
    #[arg(long, default_value_t = 4096)]
    pub max_sessions: usize,
    /// Most byte-range and whole-file locks one mount may hold; past it, ENOLCK.
    #[arg(long, default_value_t = 4096)]
    pub max_locks_per_session: usize,
    /// Most calls running at once on the server's blocking threads (reads, fsyncs, lock
    /// waits, listings, allocations), all clients together. The server has this many
    /// blocking threads and 64 more (512 at least), for the calls that answer layout
    /// recalls and its own work.
    #[arg(long, default_value_t = 256)]
    pub max_blocking: usize,
}

impl Limits {
    /// `cfg` with these bounds.
    pub fn apply(&self, cfg: ServerConfig) -> ServerConfig {
        ServerConfig {
            max_connections: self.max_connections.max(1),
            max_handshakes: self.max_handshakes.max(1),
            max_sessions: self.max_sessions.max(1),
            max_locks_per_session: self.max_locks_per_session,
            max_blocking: self.max_blocking.max(1),
            blocking_threads: server::blocking_pool(self.max_blocking.max(1)),
            ..cfg
        }
    }
}
