//! The reader: one thread per connection takes frames in and dispatches them — a reply to
//! the call waiting for it (and to the kept calls), a push to where it goes. When the
//! connection ends, it marks it broken for the recovery, unless a newer one replaced it.
//!
//! A connection brings frames in the order the server sent them: a push came after the
//! replies before it. The reader keeps when the newest call answered so far on it was made
//! (`Newest`), to date each layout recall by it as it dispatches the recall, before any
//! reply behind it.

use std::sync::{Arc, Weak};
use std::thread;

use protocol::codec::{decode_body, read_frame};
use protocol::{ErrorCode, Push, ServerMsg};

use super::state::{relock, Shared};
use super::DialError;
use crate::backend::Invalidate;
use crate::transport::Stream;

/// Start reading connection `epoch` on `stream`, dialled at `dialled` (`Shared::now_ms`, or
/// earlier): the link's reader from now on.
pub(super) fn spawn(
    shared: &Arc<Shared>,
    stream: Stream,
    epoch: u64,
    dialled: u64,
) -> Result<(), DialError> {
    let weak = Arc::downgrade(shared);
    let handle = thread::Builder::new()
        .name("rwxfs-reader".into())
        .spawn(move || read_loop(stream, weak, epoch, dialled))
        .map_err(DialError::Thread)?;
    *relock(&shared.reader) = Some(handle);
    Ok(())
}

/// When the newest call answered on this connection was made (`Shared::now_ms`), or the
/// connection was dialled if later: the server sent whatever comes next after that.
type Newest = u64;

fn read_loop(stream: Stream, shared: Weak<Shared>, epoch: u64, dialled: u64) {
    let mut newest: Newest = dialled;
    if let Some(s) = shared.upgrade() {
        s.heard_now();
    }
    // Buffered: a small reply (and often several) comes in one read from the socket.
    let mut stream = std::io::BufReader::with_capacity(64 * 1024, stream);
    let why = loop {
        let body = match read_frame(&mut stream) {
            Ok(b) => b,
            Err(e) => break format!("{e}"),
        };
        let (msg, bulk_start) = match decode_body::<ServerMsg>(&body) {
            Ok((m, bulk)) => (m, body.len() - bulk.len()),
            Err(e) => break format!("malformed message from the server: {e}"),
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.heard_now();
        dispatch(&shared, msg, (body, bulk_start), &mut newest);
    };
    let Some(shared) = shared.upgrade() else {
        return;
    };
    if shared.closed() {
        return;
    }
    let mut w = relock(&shared.wire);
    if w.epoch == epoch {
        tracing::warn!("connection to the server lost: {why}; reconnecting");
        shared.mark_broken(&mut w);
    }
}

/// One message from the server, in `body` (its bulk bytes from `bulk_start`), after the
/// answers to calls made up to `newest`.
fn dispatch(
    shared: &Shared,
    msg: ServerMsg,
    (mut body, bulk_start): (Vec<u8>, usize),
    newest: &mut Newest,
) {
    match msg {
        ServerMsg::Reply { id, result } => {
            let result = result.map_err(ErrorCode::errno);
            relock(&shared.kept).answered(id, &result);
            if let Some(p) = shared.answered(id, &result) {
                shared.renewed_by(p.made);
                *newest = (*newest).max(p.made);
                // Read data is handed over in the frame's own buffer, not copied out.
                body.drain(..bulk_start);
                p.tx.deliver((result, body));
            }
        }
        ServerMsg::Push(Push::LockGranted { wait }) => {
            if let Some(w) = relock(&shared.session).waits.remove(&wait) {
                let _ = w.tx.send(Ok(()));
            }
        }
        ServerMsg::Push(Push::InvalInode { ino }) => shared.invalidate(Invalidate::Inode(ino)),
        ServerMsg::Push(Push::InvalEntry { parent, name }) => {
            shared.invalidate(Invalidate::Entry { parent, name })
        }
        ServerMsg::Push(Push::Durable { below }) => shared.durable(below),
        ServerMsg::Push(Push::LayoutRecall { ino, waited_ms }) => {
            shared.recall(ino, waited_ms, *newest)
        }
        ServerMsg::Push(p) => tracing::debug!("push: {p:?}"),
        other => tracing::warn!("unexpected message: {other:?}"),
    }
}
