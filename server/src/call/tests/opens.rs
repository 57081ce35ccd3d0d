//! Opens made again after a restart: the open the session log restored stands for the
//! client's reopen, and only for it.

use super::*;

/// Alice's session as a restart restores it: holding `f` open once, as the session log
/// kept it (the engine's open made again, as `listener::restore_opens` does).
fn restored_with_open(shared: &Shared, id: u64, f: u64) -> Party {
    let alice = session(shared, id, ALICE);
    shared
        .vol
        .with(|v| v.open_file(volume::Ino::new(f)))
        .unwrap();
    alice.0.restore_open(f);
    alice
}

/// Alice opened Bob's file while it was 0666 and Bob has since made it 0600; then the
/// server restarted. Her client's reopen is the open she held: it is not refused by the
/// chmod it predates, and the session still holds the file once. A fresh open of hers is
/// checked against the mode as it is now, and takes nothing of the restored open; so is a
/// reopen beyond the opens restored.
#[test]
fn a_reopen_stands_for_its_restored_open_whatever_the_mode_became_and_a_fresh_open_is_checked() {
    let (shared, alice, bob, f, _) = alice_and_bobs_files("reopen-restored");
    let opened = call(&shared, &alice, 1, Request::Open { ino: f, flags: 0 }, &[]).0;
    assert!(opened.is_ok(), "{opened:?}");
    let chmod = call(&shared, &bob, 3, chmod(f, 0o600), &[]).0;
    assert!(chmod.is_ok(), "{chmod:?}");
    let again = restored_with_open(&shared, 3, f);
    let open = |id, req| call(&shared, &again, id, req, &[]).0;
    let fresh = Request::Open { ino: f, flags: 0 };
    let reopen = Request::Reopen { ino: f, flags: 0 };

    let refused = open(1, fresh).err();
    assert_eq!(refused, Some(libc::EACCES), "fresh open");
    let held = again.0.open_count();
    assert_eq!(held, 1, "the refused open changed what is held");
    let reopened = open(2, reopen.clone());
    assert!(matches!(reopened, Ok(Response::Attr(_))), "{reopened:?}");
    let held = again.0.open_count();
    assert_eq!(held, 1, "the reopen is not the restored open");
    let beyond = open(3, reopen).err();
    assert_eq!(beyond, Some(libc::EACCES), "a reopen beyond the restored");
    assert_eq!(again.0.open_count(), 1);
}
