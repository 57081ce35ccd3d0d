//! The rwxfs server: owns one volume's engine, serves many clients over TCP.
//! A task per connection; each request runs on the blocking pool against the engine, so a
//! slow disk never stalls the network side; a session outlives a lost
//! connection by its lease, so a client that reconnects carries on where it was.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod call;
mod coherence;
mod connection;
pub mod durability;
pub mod export;
mod exports;
pub mod fencing;
mod handshake;
mod linger;
pub mod listener;
mod lock_calls;
mod open_calls;
pub mod owner_gate;
pub mod permissions;
mod recalls;
pub mod reply_cache;
pub mod session;
pub mod standby;
pub mod state_log;
pub mod tls;

pub use export::{AccessMode, Export};
pub use fencing::Fence;
pub use listener::{blocking_pool, serve, ServerConfig};
pub use owner_gate::OwnerGate;

/// The store a served volume lives on: an image file, or any other `BlockStore` (RADOS).
pub type Store = Box<dyn volume::BlockStore>;
