//! `Open` and `Release`: counted per session (a release by one session never drops another
//! session's open), recorded in the session log with the engine's lock held (so open files,
//! unlinked ones included, survive a restart), and answered once across resends.

use ops::Hooks;
use protocol::codec::encode_frame;
use protocol::{Request, Response, ServerMsg};
use volume::FsError;

use crate::Store;

use crate::listener::Shared;
use crate::session::Session;
use volume::Ino;

/// Run `req` if it is an open or a release; `None` for any other call. `hooks` checks the
/// caller's permissions in the hold that opens.
pub(crate) fn execute(
    shared: &Shared,
    session: &Session,
    id: u64,
    req: &Request,
    hooks: &dyn Hooks<Store>,
) -> Option<Result<Response, FsError>> {
    let log = shared.state.as_deref();
    match *req {
        Request::Open { ino, .. } | Request::Reopen { ino, .. } => {
            let r = shared.vol.with(|v| {
                // A client opens again what it held when it finds the server restarted: an
                // open the session log restored stands for its reopen, allowed when it was
                // first made, whatever the file's mode became since. Any other open (a fresh
                // one, or a reopen beyond what was restored) is checked, and takes nothing.
                let reopen = matches!(req, Request::Reopen { .. });
                let a = if reopen && session.take_restored(ino) {
                    v.getattr(Ino::new(ino))?
                } else {
                    hooks.authorize(v, &mut req.clone())?;
                    let a = v.open_file(Ino::new(ino))?;
                    session.opened(a.ino.get());
                    if let Some(log) = log {
                        log.opened(session.id, a.ino.get());
                    }
                    a
                };
                let resp = Response::Attr(a.into());
                keep(shared, session, id, &resp);
                Ok(resp)
            });
            match &r {
                Ok(resp) => crate::coherence::note_seen(session, resp),
                // A file the crash lost, which a replayed create may bring back.
                Err(FsError::Stale) if shared.grace.active() => {
                    shared.reopens.wait_for(ino, session.id)
                }
                Err(_) => {}
            }
            Some(r)
        }
        Request::Release { ino } => Some(shared.vol.with(|v| {
            hooks.authorize(v, &mut req.clone())?;
            if session.released(ino) {
                if let Some(log) = log {
                    log.released(session.id, ino);
                }
                v.release_file(Ino::new(ino))?;
            }
            keep(shared, session, id, &Response::Empty);
            Ok(Response::Empty)
        })),
        _ => None,
    }
}

/// Keep the reply in the session log. An open or a release depends on no journal
/// transaction: its reply holds whenever the log holds it (transaction 0).
fn keep(shared: &Shared, session: &Session, id: u64, resp: &Response) {
    let Some(log) = &shared.state else {
        return;
    };
    let reply = ServerMsg::Reply {
        id,
        result: Ok(resp.clone()),
    };
    if let Ok(frame) = encode_frame(&reply, &[]) {
        log.reply(session.id, id, 0, &frame);
    }
}
