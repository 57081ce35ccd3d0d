//! Who is connected: one session per client connection, alive while its lease is renewed.

use std::net::SocketAddr;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub node_id: String,
    pub mount_id: u64,
    pub addr: SocketAddr,
    pub read_only: bool,
    pub started: Instant,
}
