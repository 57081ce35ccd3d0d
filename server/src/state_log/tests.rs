//! What the log restores: durable replies only, what it can of a damaged log, and a
//! compacted log's live records.

use super::*;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rwxfs-slog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&d);
    d
}

#[test]
fn only_replies_of_durable_transactions_come_back() {
    let p = tmp("durable");
    let (log, none) = StateLog::open(&p, 7, 0).unwrap();
    assert!(none.is_empty());
    log.started(
        SessionId::new(11),
        "node-a",
        5,
        false,
        b"secret-a",
        0x0002_0000_0009,
    );
    log.reply(SessionId::new(11), 1, 3, b"one");
    log.reply(SessionId::new(11), 2, 4, b"two");
    log.reply(SessionId::new(11), 3, 5, b"three");
    log.acked(SessionId::new(11), 2);
    log.started(SessionId::new(12), "node-b", 6, true, b"secret-b", 0);
    log.ended(SessionId::new(12));
    log.sync().unwrap();
    drop(log);
    // Transaction 4 was the last durable one: call 3's changes were lost.
    let (_log, back) = StateLog::open(&p, 7, 4).unwrap();
    assert_eq!(back.len(), 1);
    let s = &back[&11];
    assert_eq!(
        (s.node_id.as_str(), s.mount_id, s.read_only),
        ("node-a", 5, false)
    );
    assert_eq!(
        s.secret, b"secret-a",
        "a restarted server checks the same secret"
    );
    assert_eq!(
        s.export, 0x0002_0000_0009,
        "and confines it to the same export"
    );
    let kept: Vec<u64> = s.replies.keys().copied().collect();
    assert_eq!(kept, vec![2]);
    assert_eq!(s.replies[&2].1.as_slice(), b"two");
    drop(_log);
    // The dropped reply stays dropped even once the volume's transactions pass 5.
    let (_log, again) = StateLog::open(&p, 7, 100).unwrap();
    assert_eq!(again[&11].replies.len(), 1);
    let _ = std::fs::remove_file(&p);
}

#[test]
fn a_torn_tail_or_another_volume_restores_what_it_can() {
    let p = tmp("torn");
    let (log, _) = StateLog::open(&p, 7, 0).unwrap();
    log.started(SessionId::new(1), "n", 1, false, b"s", 0);
    log.reply(SessionId::new(1), 9, 1, b"x");
    log.sync().unwrap();
    drop(log);
    let mut data = std::fs::read(&p).unwrap();
    let whole = data.len();
    // A record cut short, then garbage.
    data.extend_from_slice(&[0xAB; 3]);
    std::fs::write(&p, &data).unwrap();
    let (log, back) = StateLog::open(&p, 7, 5).unwrap();
    assert_eq!(back[&1].replies.len(), 1);
    drop(log);
    // Damage inside the last record: it and what follows are ignored.
    let mut data = std::fs::read(&p).unwrap();
    data[whole - 1] ^= 0xFF;
    std::fs::write(&p, &data).unwrap();
    let (log, back) = StateLog::open(&p, 7, 5).unwrap();
    assert!(back[&1].replies.is_empty());
    drop(log);
    let (_log, other) = StateLog::open(&p, 8, 5).unwrap();
    assert!(other.is_empty());
    let _ = std::fs::remove_file(&p);
}

#[test]
fn a_large_log_is_compacted_to_what_is_live() {
    let p = tmp("compact");
    let (log, _) = StateLog::open(&p, 1, 0).unwrap();
    log.started(SessionId::new(1), "n", 1, false, b"s", 0);
    let big = vec![0u8; 64 * 1024];
    for id in 0..200u64 {
        log.reply(SessionId::new(1), id, 1, &big);
        log.acked(SessionId::new(1), id);
        log.sync().unwrap();
    }
    let len = std::fs::metadata(&p).unwrap().len();
    assert!(len < COMPACT_AT + (1 << 20), "log of {len} bytes");
    drop(log);
    let (_log, back) = StateLog::open(&p, 1, 1).unwrap();
    assert_eq!(back[&1].replies.len(), 1);
    assert_eq!(back[&1].secret, b"s", "compaction keeps the secret");
    let _ = std::fs::remove_file(&p);
}
