//! `rwxfs export create|list|resize|delete`: a running server's exports, as its
//! administrator (the server's --admin-token-file, not the mounts' token).

use std::path::PathBuf;

use protocol::{AccessMode, ExportCmd, ExportInfo};

// The command's arguments (no doc comment here: clap would take it as the subcommand's help).
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Make an export: a directory of the volume with its own quota and access mode, mounted
    /// as HOST:PORT/NAME.
    Create {
        name: String,
        /// Its quota, with K/M/G/T suffix, e.g. 10G: `df` on a mount shows it as the size.
        #[arg(long, value_parser = super::parse_bytes)]
        size: u64,
        /// Its quota in inodes (default: one per 16 KiB of --size).
        #[arg(long)]
        inodes: Option<u64>,
        /// How its mounts are admitted: rwx, rox, rwo or rwop.
        #[arg(long, default_value = "rwx", value_parser = super::parse_access_mode)]
        access_mode: AccessMode,
        #[command(flatten)]
        admin: Admin,
    },
    /// List the exports: mode, quota, use, and the nodes mounting each.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: Admin,
    },
    /// Give an export a new quota (never below what it holds).
    Resize {
        name: String,
        #[arg(long, value_parser = super::parse_bytes)]
        size: u64,
        /// Its new quota in inodes (default: as it is).
        #[arg(long)]
        inodes: Option<u64>,
        #[command(flatten)]
        admin: Admin,
    },
    /// Delete an export and everything in it (refused while it is mounted).
    Delete {
        name: String,
        #[command(flatten)]
        admin: Admin,
    },
}

/// How to reach the server as its administrator.
#[derive(clap::Args)]
pub struct Admin {
    /// HOST:PORT of the server.
    #[arg(long)]
    pub server: String,
    /// File holding the server's administrator token (its --admin-token-file).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: PathBuf,
    /// Speak TLS, trusting the certificates in FILE (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

pub fn run(a: Args) -> i32 {
    let (cmd, admin, json) = match a.cmd {
        Cmd::Create {
            name,
            size,
            inodes,
            access_mode,
            admin,
        } => {
            let cmd = ExportCmd::Create {
                name,
                bytes: size,
                inodes: inodes.unwrap_or(0),
                mode: access_mode,
            };
            (cmd, admin, false)
        }
        Cmd::List { json, admin } => (ExportCmd::List, admin, json),
        Cmd::Resize {
            name,
            size,
            inodes,
            admin,
        } => {
            let inodes = inodes.unwrap_or(0);
            let cmd = ExportCmd::Resize {
                name,
                bytes: size,
                inodes,
            };
            (cmd, admin, false)
        }
        Cmd::Delete { name, admin } => (ExportCmd::Delete { name }, admin, false),
    };
    let listing = matches!(cmd, ExportCmd::List);
    match administer(&admin, cmd) {
        Ok(list) if json => {
            println!("{}", serde_json::to_string(&list).unwrap_or_default());
            0
        }
        Ok(list) if listing => {
            print_table(&list);
            0
        }
        Ok(_) => 0,
        Err(e) => {
            eprintln!("rwxfs export: {e}");
            1
        }
    }
}

fn administer(a: &Admin, cmd: ExportCmd) -> Result<Vec<ExportInfo>, String> {
    let token = super::mount_cmd::read_token(&a.admin_token_file)?;
    let tls = a
        .tls_ca
        .as_deref()
        .map(client_fuse::transport::client_config)
        .transpose()?;
    client_fuse::link::administer(&a.server, &token, tls.as_ref(), cmd).map_err(|e| e.to_string())
}

fn print_table(list: &[ExportInfo]) {
    println!(
        "{:<32} {:<5} {:>12} {:>12} {:>10} {:>10}  nodes",
        "name", "mode", "size", "used", "inodes", "used"
    );
    for e in list {
        println!(
            "{:<32} {:<5} {:>12} {:>12} {:>10} {:>10}  {}",
            e.name,
            e.mode,
            e.bytes,
            e.bytes_used,
            e.inodes,
            e.inodes_used,
            e.nodes.join(",")
        );
    }
}
