//! One call, through one pipeline: authorize → dedupe → run → record → notify → encode. Each
//! step is a function that returns what the next needs. The connection (`connection`) reads
//! frames and hands each call here; what runs against the engine goes through the one table
//! of operations (`ops`), with the permission check and the record of its change made in the
//! same hold of the engine as the change itself (`InHold`).

use std::cell::{Cell, RefCell};

use protocol::codec::encode_frame;
use protocol::{ErrorCode, Request, Response, ServerMsg};
use volume::{FsError, FsResult, Volume};

use crate::Store;

use crate::coherence::Changes;
use crate::listener::Shared;
use crate::permissions::Caller;
use crate::reply_cache::Seen;
use crate::session::Session;

/// What a call that reached the server needs before it runs.
pub(crate) enum Dedupe {
    /// New: run it.
    Run,
    /// Already running (sent again on a new connection): its reply goes out when it ends.
    Running,
    /// Answered already, or not answerable: send this frame.
    Reply(Vec<u8>),
}

/// A call's run: its answer, bulk bytes, and what it changed that others may cache.
pub(crate) struct Ran {
    result: FsResult<Response>,
    out: Vec<u8>,
    changes: Option<Changes>,
    /// The inode a create sent again after a restart made anew.
    again: Option<u64>,
    /// A create (opened by the call): the session holds the file open.
    creates: bool,
    /// Not run: it would have waited for recalls where it may not (`answer_now`).
    deferred: bool,
}

impl Ran {
    fn failed(e: FsError) -> Ran {
        Ran {
            result: Err(e),
            out: Vec::new(),
            changes: None,
            again: None,
            creates: false,
            deferred: false,
        }
    }
}

/// Run call `id` of `session` and return its reply frame: the whole pipeline once the call
/// was admitted (`dedupe`). The caller keeps the reply (`keep`) and sends it. It may wait
/// for recalls of other sessions' layouts: never on a connection's task (`answer_now`).
pub(crate) fn answer(
    shared: &Shared,
    session: &Session,
    caller: &Caller,
    id: u64,
    req: Request,
    bulk: &[u8],
) -> Vec<u8> {
    let frame = answer_with(shared, session, caller, id, req, bulk, true);
    frame.unwrap_or_else(|| unreachable_frame(id))
}

/// What `answer_now` made of a call.
#[derive(Debug)]
pub(crate) enum Now {
    /// Its reply frame.
    Answered(Vec<u8>),
    /// Not run: it would have waited for recalls. Run it where it may wait.
    Later(Request),
}

/// `answer`, on a connection's task: a call that would wait for recalls (a layout was
/// handed out since the connection judged it could not) is not run and comes back, to be
/// run where it may wait.
pub(crate) fn answer_now(
    shared: &Shared,
    session: &Session,
    caller: &Caller,
    id: u64,
    req: Request,
    bulk: &[u8],
) -> Now {
    let again = crate::recalls::frees(&req).then(|| req.clone());
    match (
        answer_with(shared, session, caller, id, req, bulk, false),
        again,
    ) {
        (Some(frame), _) => Now::Answered(frame),
        (None, Some(req)) => Now::Later(req),
        (None, None) => Now::Answered(unreachable_frame(id)),
    }
}

/// An EIO reply to `id`: for a call deferred where none may be (never made).
fn unreachable_frame(id: u64) -> Vec<u8> {
    tracing::error!("call {id} was deferred where it may wait");
    let reply = ServerMsg::Reply {
        id,
        result: Err(ErrorCode::Io),
    };
    encode_frame(&reply, &[]).unwrap_or_default()
}

/// The pipeline; `None` if the call would have waited for recalls and `may_wait` is false
/// (nothing was done).
fn answer_with(
    shared: &Shared,
    session: &Session,
    caller: &Caller,
    id: u64,
    mut req: Request,
    bulk: &[u8],
    may_wait: bool,
) -> Option<Vec<u8>> {
    let root = session.info.export;
    if root != 0 {
        crate::exports::inbound(root, &mut req);
    }
    let lists_root = matches!(req,
        Request::Readdir { ino, .. } | Request::Readdirplus { ino, .. } if root != 0 && ino == root);
    let mutates = req.mutates();
    let ran = match authorize(shared, session, &req) {
        Ok(()) => run(shared, session, caller, (id, may_wait), req, bulk),
        Err(e) => Ran::failed(e),
    };
    if ran.deferred {
        return None;
    }
    if mutates {
        session.unsafe_calls().end(id);
    }
    record(shared, session, &ran);
    notify(shared, session, &ran);
    let shown = Shown {
        shared,
        root,
        lists_root,
    };
    Some(encode(id, caller, &shown, ran))
}

/// What may be refused before the call runs: a change on a read-only mount, direct mode
/// for an export's mount, and a lock call of an export's mount that names an inode outside
/// it (`exports::confine`: lock calls take no hold of the engine of their own). Every other
/// call is confined, and who may do what to which inode decided, in the engine's hold that
/// runs it (`allowed`, from `InHold::authorize`).
fn authorize(shared: &Shared, session: &Session, req: &Request) -> FsResult<()> {
    if session.info.read_only && req.mutates() {
        return Err(FsError::ReadOnly);
    }
    match session.info.export {
        0 => Ok(()),
        // Direct mode opens the whole volume's image: no mount of an export gets it.
        _ if matches!(req, Request::VolumeLocation) => Err(FsError::NotSupported),
        root if crate::lock_calls::handles(req) => {
            shared.vol.with(|v| crate::exports::confine(v, root, req))
        }
        _ => Ok(()),
    }
}

/// May `caller`, of a mount of the export rooted at `root` (0: the whole volume), make
/// `req` (adjusted as `permissions::check` adjusts it)? Its inodes inside the export, and
/// its permissions, checked with the engine held.
pub(crate) fn allowed(
    v: &mut Volume<Store>,
    root: u64,
    caller: &Caller,
    req: &mut Request,
) -> FsResult<()> {
    if root != 0 {
        crate::exports::confine(v, root, req)?;
    }
    crate::permissions::check(caller, req, v)
}

/// How a session sees its answers: a mount of an export sees the export's root as inode 1.
struct Shown<'a> {
    shared: &'a Shared,
    /// The export's root; 0 for the whole volume.
    root: u64,
    /// The call lists the export's root (whose `..` is itself).
    lists_root: bool,
}

impl Shown<'_> {
    fn apply(&self, resp: &mut Response) {
        if self.root == 0 {
            return;
        }
        let (shared, root) = (self.shared, self.root);
        let root_attr = || {
            shared
                .vol
                .with(|v| v.getattr(volume::Ino::new(root)).ok().map(Into::into))
        };
        crate::exports::outbound(root, self.lists_root, root_attr, resp);
    }
}

/// A call the client may send again (after a reconnect) runs once: a repeat gets the kept
/// reply, or nothing while the first still runs.
pub(crate) fn dedupe(session: &Session, id: u64, req: &Request) -> Dedupe {
    if !req.remembered() {
        return Dedupe::Run;
    }
    let seen = session
        .replies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .begin(id);
    match seen {
        Seen::New => {
            if req.mutates() {
                session.unsafe_calls().begin(id);
            }
            Dedupe::Run
        }
        Seen::Running => Dedupe::Running,
        Seen::Stale => {
            // Below what the client acknowledged: it cannot be waiting for this one unless
            // it miscounted; an error beats a call that never returns.
            tracing::warn!(
                session = session.id.get(),
                id,
                "call below the acknowledged id"
            );
            let reply = ServerMsg::Reply {
                id,
                result: Err(ErrorCode::Io),
            };
            encode_frame(&reply, &[]).map_or(Dedupe::Running, Dedupe::Reply)
        }
        Seen::Done(frame) => {
            session.unsafe_calls().seen(id);
            tracing::debug!(
                session = session.id.get(),
                id,
                "repeated call: the kept reply"
            );
            Dedupe::Reply(frame.to_vec())
        }
    }
}

/// Keep the reply to a call the client may send again, until it acknowledges it. Send it
/// after this, to the session's connection as it is then (`Session::sender`), not the one the
/// call came on: a copy resent on a new connection while the call ran was dropped as running
/// (`dedupe`, under the lock this takes), and that connection was attached before.
pub(crate) fn keep(session: &Session, id: u64, remembered: bool, frame: &[u8]) {
    if remembered {
        session
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish(id, std::sync::Arc::new(frame.to_vec()));
    }
}

/// Run the call: on the lock manager, as an open or a release of the session, or through
/// the table of operations.
fn run(
    shared: &Shared,
    session: &Session,
    caller: &Caller,
    (id, may_wait): (u64, bool),
    req: Request,
    bulk: &[u8],
) -> Ran {
    let hold = InHold::new(shared, session, caller, id, &req);
    let plain = |result| Ran {
        result,
        ..Ran::failed(FsError::Invalid)
    };
    if let Some(r) = crate::lock_calls::execute(shared, session.id, id, &req) {
        return plain(r);
    }
    if let Some(r) = crate::open_calls::execute(shared, session, id, &req, &hold) {
        return plain(r);
    }
    // Layouts other mounts hold on blocks the call frees come back first (direct mode).
    // Until it has run, no layout of the files it cuts is given.
    let _cutting = match crate::recalls::before(shared, session.id, caller, &req, may_wait) {
        Err(e) => return plain(Err(e)),
        Ok(None) => {
            return Ran {
                deferred: true,
                ..Ran::failed(FsError::WouldBlock)
            }
        }
        Ok(Some(cutting)) => cutting,
    };
    let layouts = layout_call(&req);
    if let (Request::LayoutGet { write, .. }, Some(_)) = (&req, &shared.cfg.fence) {
        if !shared.fencing.may_use_store(session.id.get(), *write) {
            // No write layout to a mount that could not be fenced, no layout at all to one
            // fenced: it reads and writes through the server.
            return plain(Err(FsError::WouldBlock));
        }
    }
    if req.mutates() && shared.made.depends(session.id, &req) {
        // Made durable first what this call builds on (see `durability::Made`).
        if let Err(e) = shared.vol.commit() {
            tracing::warn!("commit before a dependent call failed: {e}");
        }
    }
    let mutates = req.mutates();
    let again = match &req {
        Request::CreateAgain { ino, .. } => Some(*ino),
        _ => None,
    };
    let creates = opens_what_it_makes(&req);
    let (result, out) = ops::execute(&shared.vol, req, bulk, &hold);
    match (layouts, &result) {
        (Some((ino, false)), Ok(_)) => shared.recalls.returned(session.id.get(), ino),
        (Some((ino, true)), Err(FsError::WouldBlock)) => {
            crate::recalls::conflict(shared, session.id, ino)
        }
        _ => {}
    }
    let targets = hold.targets.take();
    Ran {
        changes: mutates.then(|| crate::coherence::changes(&hold.shown, targets)),
        result,
        out,
        again,
        creates,
        deferred: false,
    }
}

/// A layout return (`(ino, false)`) or a write layout asked for (`(ino, true)`).
fn layout_call(req: &Request) -> Option<(u64, bool)> {
    match req {
        Request::LayoutReturn { ino } => Some((*ino, false)),
        Request::LayoutGet {
            ino, write: true, ..
        } => Some((*ino, true)),
        _ => None,
    }
}

/// After a call ran: what the session now holds open, and opens waiting for a create the
/// crash lost.
fn record(shared: &Shared, session: &Session, ran: &Ran) {
    if let (Some(ino), Ok(_)) = (ran.again, &ran.result) {
        shared.reopens.made(shared, ino);
    }
    if let (true, Ok(Response::Attr(a))) = (ran.creates, &ran.result) {
        session.opened(a.ino);
    }
}

/// Tell other sessions what the call changed, and note what its reply lets this one cache.
fn notify(shared: &Shared, session: &Session, ran: &Ran) {
    if let Ok(resp) = &ran.result {
        crate::coherence::note_seen(session, resp);
        if let Some(c) = &ran.changes {
            crate::coherence::notify(shared, session.id, c);
        }
    }
}

/// The reply frame, with the call's result as the caller may see it.
fn encode(id: u64, caller: &Caller, shown: &Shown, ran: Ran) -> Vec<u8> {
    let mut r = ran.result;
    if let Ok(Response::Names(names)) = &mut r {
        crate::permissions::visible_names(caller, names);
    }
    if let Ok(resp) = &mut r {
        shown.apply(resp);
    }
    let result = r.map_err(|e| {
        if matches!(e, FsError::Corrupt(_) | FsError::Io(_)) {
            tracing::error!("request {id} failed: {e}");
        }
        ErrorCode::from(&e)
    });
    encode_frame(&ServerMsg::Reply { id, result }, &ran.out).unwrap_or_else(|e| {
        tracing::error!("reply {id} not encodable: {e}");
        let reply = ServerMsg::Reply {
            id,
            result: Err(ErrorCode::Io),
        };
        encode_frame(&reply, &[]).unwrap_or_default()
    })
}

/// What the server does with the engine held, around the table's engine work: the caller's
/// permissions checked (and creates made its own) in the hold that does the work, so no
/// other call can change what the check allowed; the change recorded in the hold that
/// makes it, tagged with its transaction (see `state_log`).
pub(crate) struct InHold<'a> {
    shared: &'a Shared,
    session: &'a Session,
    caller: &'a Caller,
    id: u64,
    /// The call as other sessions see its effect: a create made again is the create.
    shown: Request,
    /// A create, which opens what it makes (not one made again: its client opens that).
    creates: bool,
    /// Inodes the call is about to take a name from, looked up in the hold that runs it.
    targets: RefCell<Vec<u64>>,
    /// A commit was asked for what the call builds on (`durability::Made`).
    waited: Cell<bool>,
}

impl<'a> InHold<'a> {
    fn new(
        shared: &'a Shared,
        session: &'a Session,
        caller: &'a Caller,
        id: u64,
        req: &Request,
    ) -> InHold<'a> {
        let shown = match req {
            Request::CreateAgain { req, .. } => req.as_ref().clone(),
            req => req.clone(),
        };
        InHold {
            shared,
            session,
            caller,
            id,
            shown,
            creates: opens_what_it_makes(req),
            targets: RefCell::new(Vec::new()),
            waited: Cell::new(false),
        }
    }
}

impl ops::Hooks<Store> for InHold<'_> {
    fn authorize(&self, v: &mut Volume<Store>, req: &mut Request) -> FsResult<()> {
        allowed(v, self.session.info.export, self.caller, req)?;
        #[cfg(test)]
        tests::after_check(self.shared);
        if let Request::LayoutGet { ino, .. } = req {
            if self.shared.recalls.being_cut(*ino) {
                // A call is cutting its blocks (`recalls::Cutting`): through the server.
                return Err(FsError::WouldBlock);
            }
        }
        if !self.waited.get()
            && req.mutates()
            && self.shared.made.depends_by_name(self.session.id, req)
        {
            // A name another session changed, not yet durable: commit, and run again (see
            // `durability::Made`). Once: after that commit, every change made before it is
            // durable (a call that changed nothing left no transaction to wait for).
            self.waited.set(true);
            return Err(FsError::Again);
        }
        if let Request::CreateAgain { ino, .. } = req {
            self.shared.linger.yield_slot(v, *ino);
        }
        if req.mutates() {
            // Kept in this hold, before the call takes its name (see `linger`).
            self.shared
                .linger
                .keep(v, &self.shown, self.shared.grace.active());
            *self.targets.borrow_mut() = crate::coherence::targets_before(v, &self.shown);
        }
        Ok(())
    }

    fn answered(&self, resp: &Response) {
        self.shared.linger.shown(resp);
    }

    fn free_space(&self, v: &mut Volume<Store>) -> bool {
        self.shared.linger.release_all(v) > 0
    }

    fn record(&self, seq: u64, resp: &Response, out: &[u8]) {
        let (shared, session, id) = (self.shared, self.session, self.id);
        session.unsafe_calls().ran(id, seq);
        if let (true, Response::Attr(a)) = (self.shown.meta().makes, resp) {
            shared.made.made(a.ino, session.id, seq);
        }
        shared.made.changed(&self.shown, session.id, seq);
        let Some(log) = &shared.state else { return };
        if let (true, Response::Attr(a)) = (self.creates, resp) {
            log.opened(session.id, a.ino);
        }
        let mut resp = resp.clone();
        if session.info.export != 0 {
            crate::exports::outbound(session.info.export, false, || None, &mut resp);
        }
        let reply = ServerMsg::Reply {
            id,
            result: Ok(resp),
        };
        if let Ok(frame) = encode_frame(&reply, out) {
            log.reply(session.id, id, seq, &frame);
        }
    }

    fn holder(&self) -> u64 {
        self.session.id.get()
    }

    /// A mount of an export sees the export's quota as its size.
    fn root(&self) -> Option<u64> {
        match self.session.info.export {
            0 => None,
            root => Some(root),
        }
    }

    fn location(&self) -> Option<protocol::VolumeAt> {
        self.shared.cfg.direct_location.clone()
    }

    fn store_client(&self, address: &str) -> FsResult<()> {
        if self.shared.cfg.fence.is_none() {
            return Err(FsError::NotSupported);
        }
        let holder = self.session.id.get();
        if !self.shared.fencing.register(holder, address) {
            // The mount was fenced at that address: until it comes with another, its data
            // goes through the server.
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }
}

/// A create that opens the file it makes (not one made again: its client opens that).
fn opens_what_it_makes(req: &Request) -> bool {
    let m = req.meta();
    m.makes && m.opens.is_some()
}

#[cfg(test)]
mod tests;
