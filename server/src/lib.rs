//! The rwxfs server: owns one volume's engine, serves many clients over TCP.
//! A task per connection; each request runs on the blocking pool against the engine, so a
//! slow disk never stalls the network side; sessions live while their connection and lease do.

pub mod dispatch;
pub mod listener;
pub mod session;

pub use listener::{serve, ServerConfig};
