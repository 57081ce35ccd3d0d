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
        /// The owner of its root directory (default root).
        #[arg(long)]
        uid: Option<u32>,
        /// The group of its root directory (default root).
        #[arg(long)]
        gid: Option<u32>,
        /// Its root directory's permission bits, octal. Default: 0755 when --uid or --gid
        /// names an owner, else 0777 as a fresh volume's root (root is squashed by default,
        /// so a root-owned 0755 root would be writable by no mount).
        #[arg(long, value_name = "OCTAL", value_parser = parse_perm)]
        perm: Option<u32>,
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
            uid,
            gid,
            perm,
            admin,
        } => {
            let owned = uid.is_some() || gid.is_some();
            let cmd = ExportCmd::CreateOwned {
                name,
                bytes: size,
                inodes: inodes.unwrap_or(0),
                mode: access_mode,
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
                perm: perm.unwrap_or(if owned { 0o755 } else { 0o777 }),
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

/// Permission bits in octal (`0755`, `755` or `0o755`), at most 7777.
pub fn parse_perm(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(p) if p <= 0o7777 => Ok(p),
        Ok(_) => Err(format!("{s}: permission bits go up to 7777")),
        Err(_) => Err(format!("{s}: not octal permission bits, e.g. 0755")),
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
