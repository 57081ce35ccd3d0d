//! A mount carries on across lost connections: calls wait, the client reconnects and resumes
//! its session, and calls that change the volume take effect exactly once even when the
//! server ran them before the connection died (the reply cache answers the repeat).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rwxfs_tests::{assert_fsck_clean, harness, Proxy};

#[test]
fn creates_renames_and_appends_take_effect_once_across_cut_connections() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let mp = h.mount_remote(&proxy.addr).unwrap();
    std::fs::create_dir(mp.join("d")).unwrap();
    std::fs::write(mp.join("log"), b"").unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let per_writer = 300;
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let mp = mp.clone();
            std::thread::spawn(move || {
                let mut log = std::fs::OpenOptions::new()
                    .append(true)
                    .open(mp.join("log"))
                    .unwrap();
                for j in 0..per_writer {
                    let name = mp.join(format!("d/w{w}-{j}"));
                    // O_EXCL: a create that ran twice would fail with EEXIST.
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&name)
                        .unwrap_or_else(|e| panic!("create {}: {e}", name.display()));
                    f.write_all(format!("content of w{w}-{j}").as_bytes())
                        .unwrap();
                    drop(f);
                    if j % 2 == 0 {
                        // A rename that ran twice would fail with ENOENT.
                        std::fs::rename(&name, mp.join(format!("d/r{w}-{j}"))).unwrap();
                    }
                    log.write_all(format!("w{w} record {j}\n").as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    let cutter = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut cuts = 0;
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(150));
                proxy.cut();
                cuts += 1;
            }
            (cuts, proxy)
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (cuts, proxy) = cutter.join().unwrap();
    println!("{cuts} cuts, {} connections", proxy.accepted());
    assert!(cuts >= 3, "only {cuts} cuts happened during the workload");
    assert!(
        proxy.accepted() > 1,
        "the mount never reconnected ({} connections)",
        proxy.accepted()
    );

    // Everything once, nothing lost: names, contents and log records.
    for w in 0..3 {
        for j in 0..per_writer {
            let name = if j % 2 == 0 {
                format!("d/r{w}-{j}")
            } else {
                format!("d/w{w}-{j}")
            };
            assert_eq!(
                std::fs::read_to_string(mp.join(&name)).unwrap(),
                format!("content of w{w}-{j}"),
                "{name}"
            );
        }
    }
    let n = std::fs::read_dir(mp.join("d")).unwrap().count();
    assert_eq!(n, 3 * per_writer);
    let log = std::fs::read_to_string(mp.join("log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort();
    let mut want: Vec<String> = (0..3)
        .flat_map(|w| (0..per_writer).map(move |j| format!("w{w} record {j}")))
        .collect();
    want.sort();
    assert_eq!(lines.len(), want.len(), "log records lost or repeated");
    assert!(lines.iter().zip(&want).all(|(a, b)| a == b));
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
