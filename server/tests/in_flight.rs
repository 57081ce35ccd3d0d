//! A connection whose calls in flight all wait (on a recall another mount leaves
//! unanswered) goes on reading its frames: a quick call and a layout return sent after them
//! are answered while they wait, where the connection stopped reading at its limit.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use protocol::{Request, Response, ServerMsg, SetAttr};
use support::{create, make_image, scratch, Client, Server};

/// The server's limit of calls in flight on one connection, here.
const LIMIT: u64 = 8;

/// Replies as they come on one connection, by call id.
#[derive(Default)]
struct Replies(HashMap<u64, Result<Response, i32>>);

impl Replies {
    /// Read `c`'s messages until every call in `ids` has its reply, or `wait` has passed;
    /// true if they all came.
    fn wait_for(&mut self, c: &mut Client, ids: &[u64], wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while !ids.iter().all(|id| self.0.contains_key(id)) {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return false;
            };
            if let Some(ServerMsg::Reply { id, result }) = c.next(left) {
                self.0
                    .insert(id, result.map_err(protocol::ErrorCode::errno));
            }
        }
        true
    }
}

#[test]
fn a_connection_with_its_limit_of_calls_waiting_on_a_recall_still_reads_its_frames() {
    let dir = scratch("in-flight");
    let image = make_image(&dir, 64 << 20);
    let srv = Server::start_with(&image, |cfg| {
        cfg.max_in_flight = LIMIT as usize;
        // Longer than the test: no recall times out and no one is silent past it.
        cfg.lease = Duration::from_secs(300);
    });
    let mut a = Client::hello(&srv.addr, None);
    let mut b = Client::hello(&srv.addr, None);
    let g = create(&mut a, 1, "g");
    let get = Request::LayoutGet {
        ino: g,
        offset: 0,
        len: 4096,
        write: true,
        kill_priv: false,
    };
    assert!(matches!(b.call(1, get), Ok(Response::Layout(_))));
    // A truncates g its limit's worth of times, and once more: each waits for B to give
    // its layout back, which B does not do yet.
    let cut = Request::Setattr {
        ino: g,
        set: SetAttr {
            size: Some(0),
            ..Default::default()
        },
    };
    let cuts: Vec<u64> = (10..=10 + LIMIT).collect();
    cuts.iter().for_each(|&id| a.send(id, cut.clone()));
    let mut seen = Replies::default();
    a.send(100, Request::Getattr { ino: g });
    a.send(101, Request::LayoutReturn { ino: g });
    assert!(
        seen.wait_for(&mut a, &[100, 101], Duration::from_secs(30)),
        "calls after {} waiting ones were not answered within 30 s: {:?}",
        cuts.len(),
        seen.0.keys().collect::<Vec<_>>()
    );
    assert!(
        matches!(seen.0[&100], Ok(Response::Attr(_))),
        "{:?}",
        seen.0
    );
    assert_eq!(seen.0[&101], Ok(Response::Empty));
    assert!(
        cuts.iter().all(|id| !seen.0.contains_key(id)),
        "a truncate was answered before B gave its layout back: the test proves nothing"
    );
    // B gives its layout back: every truncate is answered.
    let give_back = Request::LayoutReturn { ino: g };
    assert_eq!(b.call(2, give_back), Ok(Response::Empty));
    assert!(
        seen.wait_for(&mut a, &cuts, Duration::from_secs(120)),
        "the truncates were not answered once the layout was back"
    );
    for id in &cuts {
        assert!(
            matches!(seen.0[id], Ok(Response::Attr(_))),
            "{:?}",
            seen.0[id]
        );
    }
    drop((a, b));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
