//! `rwxfs demo [--clients N] [--files N] [--json] [--picture DIR]`

use std::path::PathBuf;

use demo::report::render;
use demo::strip::{self, Style};
use demo::{run_demo, DemoOptions};

pub fn run(clients: usize, files: usize, json: bool, picture: Option<PathBuf>) -> i32 {
    if clients < 1 || files < 1 {
        eprintln!("rwxfs demo: --clients and --files must be at least 1");
        return 2;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("rwxfs demo: FUSE mounts need root (CAP_SYS_ADMIN) here; run it as root");
        return 1;
    }
    if std::fs::metadata("/dev/fuse").is_err() {
        eprintln!("rwxfs demo: FUSE is unavailable: /dev/fuse does not exist");
        return 1;
    }
    let bin = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rwxfs demo: cannot find my own binary: {e}");
            return 1;
        }
    };
    let opts = DemoOptions {
        bin,
        clients,
        files,
        image_size: "512M".into(),
        progress: !json,
        picture_dir: Some(picture.unwrap_or_else(|| std::env::temp_dir().join("rwxfs-demo"))),
    };
    match run_demo(&opts) {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                let maps = [&report.shared, &report.raw, &report.direct]
                    .map(|side| side.block_map.as_ref());
                print!("{}", strip::render(maps, Style::for_stdout()));
                print!("{}", render(&report));
                print!("{}", strip::pictures(&report));
            }
            if report.shared.is_perfect() && report.direct.is_perfect() {
                0
            } else {
                3
            }
        }
        Err(e) => {
            eprintln!("rwxfs demo: {e}");
            1
        }
    }
}
