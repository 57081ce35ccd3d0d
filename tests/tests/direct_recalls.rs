//! Recalls under load, with real mounts: the calls that wait for a recall never keep the
//! holders from answering it.

use std::os::unix::fs::FileExt;

use rwxfs_tests::{assert_fsck_clean, harness, reads_as};

const FILES: usize = 4;

fn name(k: usize) -> String {
    format!("f{k}")
}

#[test]
fn truncates_waiting_for_recalls_on_every_blocking_thread_do_not_starve_the_holders_answers() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    // Two calls at once on the server's blocking threads: fewer than the truncates.
    let addr = h
        .start_server(&img, &["--lease-secs", "4", "--max-blocking", "2"])
        .unwrap();
    let truncater = h.mount_remote(&addr).unwrap();
    let holder = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let data: Vec<u8> = (0..65536u32).map(|k| (k % 251) as u8).collect();
    let files: Vec<std::fs::File> = (0..FILES)
        .map(|k| {
            let f = std::fs::File::create(holder.join(name(k))).unwrap();
            // Written through layouts, not committed: the holder holds them.
            f.write_all_at(&data, 0).unwrap();
            f
        })
        .collect();
    // Every file truncated at once from the other mount: each truncate recalls the
    // holder's layouts and waits for its commit and return.
    std::thread::scope(|s| {
        for k in 0..FILES {
            let p = truncater.join(name(k));
            s.spawn(move || {
                let t = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                t.set_len(10).unwrap();
            });
        }
    });
    // The holder answered each recall: what it wrote was committed before the cut.
    for (k, f) in files.iter().enumerate() {
        let synced = f.sync_all();
        assert!(
            synced.is_ok(),
            "{}: the holder's fsync: {synced:?}",
            name(k)
        );
        reads_as(&truncater.join(name(k)), &data[..10]);
    }
    drop(files);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
