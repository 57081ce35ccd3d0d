//! `rwxfs demo` and the process harness beneath it (also used by the integration tests):
//! start a server and real FUSE mounts as child processes, run a concurrent-writer workload,
//! verify from a fresh mount and with fsck, and report side by side.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod harness;
pub mod picture;
pub mod report;
pub mod run;
pub mod strip;
pub mod workload;

pub use harness::Harness;
pub use run::{run_demo, DemoOptions};
