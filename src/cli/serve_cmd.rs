//! `rwxfs serve --image IMAGE --listen HOST:PORT`

use std::path::Path;
use std::time::Duration;

use server::{serve, ServerConfig};
use tokio_util::sync::CancellationToken;
use volume::{FileStore, Volume};

pub fn run(image: &Path, listen: &str, lease_secs: u64) -> i32 {
    let store = match FileStore::open(image) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rwxfs serve: {}: {e}", image.display());
            return 1;
        }
    };
    let vol = match Volume::open(store) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rwxfs serve: {}: {e}", image.display());
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rwxfs serve: cannot listen on {listen}: {e}");
                return 1;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| listen.to_string());
        eprintln!("rwxfs: serving {} on {addr}", image.display());
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            t.cancel();
        });
        let cfg = ServerConfig {
            lease: Duration::from_secs(lease_secs.max(1)),
            ..ServerConfig::default()
        };
        match serve(vol, listener, cfg, token).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rwxfs serve: {e}");
                1
            }
        }
    })
}
