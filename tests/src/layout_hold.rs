//! A proxy between mounts and the server that holds back the server's answers to write
//! layout requests (`Request::LayoutGet` with `write`), or to read layout requests
//! (`LayoutHold::start_for`), while a test says so, and lets every other message pass in its
//! turn: heartbeats and their answers, recalls, other replies. A direct mount whose write
//! (or read) asked for a layout then waits between the server's giving it (its blocks
//! reserved) and its own use of it, as a mount on a paused VM or behind a slow network
//! would, at the moment a test names: once `wait_held` returns, the layout is given and the
//! mount has not seen it. The answers held go to their mounts at `release`, before anything
//! else the server sends after it, and before a connection the server closed meanwhile is
//! closed to its mount. It also counts the layout returns the mounts send (`wait_returns`).
//! Plain TCP only (the proxy reads the frames).
//!
//! It can also stall the way from the server to its mounts altogether (`stall`): every
//! message the server sends is held, in its order, until `release` sends them all at once,
//! as a network that delays one direction only delivers them: recalls, answers and all in
//! one burst. The other way goes on: calls reach the server and are answered.

use std::collections::HashSet;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocol::codec::{decode_body, read_frame};
use protocol::{ClientMsg, Request, ServerMsg};

/// Which layout requests' answers a `LayoutHold` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Holds {
    /// Layouts asked for writing.
    #[default]
    Writes,
    /// Layouts asked for reading.
    Reads,
}

/// A proxy that can hold the server's answers to write (or read) layout requests.
pub struct LayoutHold {
    /// The address mounts dial instead of the server's.
    pub addr: String,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// The side of one connection the proxy writes to its mount.
type ToMount = Arc<Mutex<TcpStream>>;

#[derive(Default)]
struct Shared {
    /// Whose answers are held.
    which: Holds,
    state: Mutex<State>,
    /// Signalled when an answer is held or the held ones are let go.
    changed: Condvar,
    stop: AtomicBool,
    /// Every socket of every connection, to shut them all when the proxy drops.
    live: Mutex<Vec<TcpStream>>,
}

/// A message held on its way to its mount: the connection it goes back on, the frame, and
/// whether it answers a layout request of the kind held.
struct Held {
    to: ToMount,
    frame: Vec<u8>,
    layout: bool,
}

#[derive(Default)]
struct State {
    /// Answers to write layout requests are held while set.
    holding: bool,
    /// Every message from the server is held while set.
    stalled: bool,
    /// Call ids of the layout requests of the kind held on their way to the server.
    asked: HashSet<u64>,
    /// Layout returns sent by the mounts so far.
    returns: usize,
    /// The messages held, in the order they came.
    held: Vec<Held>,
    /// Set while released answers are on their way to their mounts.
    sending: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One frame as it crossed: its length prefix and its body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Mount to server: each layout request of the kind held is noted before it goes on, and
/// each layout return counted once it went on.
fn upward(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>) {
    while let Ok(body) = read_frame(&mut from) {
        let call = match decode_body::<ClientMsg>(&body) {
            Ok((ClientMsg::Call { id, req } | ClientMsg::CallAs { id, req, .. }, _)) => {
                Some((id, req))
            }
            _ => None,
        };
        let returns = matches!(call, Some((_, Request::LayoutReturn { .. })));
        if let Some((id, Request::LayoutGet { write, .. })) = call {
            if write == (shared.which == Holds::Writes) {
                shared.state().asked.insert(id);
            }
        }
        if to.write_all(&frame(&body)).is_err() {
            break;
        }
        if returns {
            shared.state().returns += 1;
            shared.changed.notify_all();
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Server to mount: the answer to a noted request is held while holding is on, and every
/// message while stalled; the rest goes on, after what a release is sending. When the
/// server's side ends, the mount's side waits for its held answers.
fn downward(mut from: TcpStream, to: ToMount, shared: Arc<Shared>) {
    while let Ok(body) = read_frame(&mut from) {
        let layout = match decode_body::<ServerMsg>(&body) {
            Ok((ServerMsg::Reply { id, .. }, _)) => shared.state().asked.remove(&id),
            _ => false,
        };
        {
            let mut s = shared.state();
            while s.sending && !shared.stop.load(Ordering::SeqCst) {
                s = (shared.changed.wait(s)).unwrap_or_else(|e| e.into_inner());
            }
            if s.stalled || (layout && s.holding) {
                let to = Arc::clone(&to);
                s.held.push(Held {
                    to,
                    frame: frame(&body),
                    layout,
                });
                shared.changed.notify_all();
                continue;
            }
        }
        let sent = to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&frame(&body));
        if sent.is_err() {
            break;
        }
    }
    let mut s = shared.state();
    while (s.sending || s.held.iter().any(|h| Arc::ptr_eq(&h.to, &to)))
        && !shared.stop.load(Ordering::SeqCst)
    {
        s = (shared.changed.wait(s)).unwrap_or_else(|e| e.into_inner());
    }
    drop(s);
    let _ = to
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Join a mount's connection to a new one to the server, a thread each way.
fn join(mount: TcpStream, upstream: &str, shared: &Arc<Shared>) -> std::io::Result<()> {
    mount.set_nonblocking(false)?;
    let server = TcpStream::connect(upstream)?;
    mount.set_nodelay(true)?;
    server.set_nodelay(true)?;
    {
        let mut live = shared.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|s| s.peer_addr().is_ok());
        live.push(mount.try_clone()?);
        live.push(server.try_clone()?);
    }
    let to_mount: ToMount = Arc::new(Mutex::new(mount.try_clone()?));
    let (up_to, sh) = (server.try_clone()?, Arc::clone(shared));
    std::thread::spawn(move || upward(mount, up_to, sh));
    let sh = Arc::clone(shared);
    std::thread::spawn(move || downward(server, to_mount, sh));
    Ok(())
}

impl LayoutHold {
    /// Listen on a free loopback port and forward each connection to `upstream`, holding
    /// nothing yet; `hold` holds the answers to write layout requests.
    pub fn start(upstream: &str) -> std::io::Result<LayoutHold> {
        LayoutHold::start_for(upstream, Holds::Writes)
    }

    /// As `start`, `hold` holding the answers to the layout requests `which` names.
    pub fn start_for(upstream: &str, which: Holds) -> std::io::Result<LayoutHold> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            which,
            ..Shared::default()
        });
        let (sh, upstream) = (Arc::clone(&shared), upstream.to_string());
        let acceptor = std::thread::spawn(move || {
            while !sh.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mount, _)) => {
                        if let Err(e) = join(mount, &upstream, &sh) {
                            eprintln!("layout hold: a connection to {upstream} failed: {e}");
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(LayoutHold {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// From now on, hold the server's answers to layout requests of the kind held.
    pub fn hold(&self) {
        self.shared.state().holding = true;
    }

    /// From now on, hold every message the server sends, until `release`.
    pub fn stall(&self) {
        self.shared.state().stalled = true;
    }

    /// Wait until an answer to a layout request of the kind held is held (the layout is
    /// given, the mount has not seen it); a panic if none is within two minutes.
    pub fn wait_held(&self) {
        self.wait_for("a layout asked for and given", |s| {
            s.held.iter().any(|h| h.layout)
        });
    }

    /// The layout returns the mounts sent so far.
    pub fn returns(&self) -> usize {
        self.shared.state().returns
    }

    /// Wait until the mounts have sent `n` layout returns in all; a panic if they have not
    /// within two minutes.
    pub fn wait_returns(&self, n: usize) {
        self.wait_for(&format!("{n} layout returns"), |s| s.returns >= n);
    }

    /// How many messages held so far `pick` picks.
    pub fn held_count(&self, pick: impl Fn(&ServerMsg) -> bool) -> usize {
        count(&self.shared.state().held, &pick)
    }

    /// Wait until `n` messages held pick `pick` (`what` they are, for the panic if they are
    /// not within two minutes).
    pub fn wait_held_count(&self, what: &str, n: usize, pick: impl Fn(&ServerMsg) -> bool) {
        self.wait_for(what, |s| count(&s.held, &pick) >= n);
    }

    fn wait_for(&self, what: &str, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut s = self.shared.state();
        while !done(&s) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "never happened: {what}");
            s = (self.shared.changed.wait_timeout(s, left))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stop holding and stalling, and send each message held to its mount, in the order
    /// they came (a stopped mount included: it finds them waiting when it goes on).
    pub fn release(&self) {
        let held: Vec<Held> = {
            let mut s = self.shared.state();
            s.holding = false;
            s.stalled = false;
            s.sending = true;
            s.held.drain(..).collect()
        };
        // Each connection's in one write, in their order: they come at once, as after a
        // stall.
        let mut burst: Vec<(ToMount, Vec<u8>)> = Vec::new();
        for h in held {
            match burst.iter_mut().find(|(to, _)| Arc::ptr_eq(to, &h.to)) {
                Some((_, bytes)) => bytes.extend_from_slice(&h.frame),
                None => burst.push((h.to, h.frame)),
            }
        }
        for (to, bytes) in burst {
            let _ = to
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(&bytes);
        }
        self.shared.state().sending = false;
        self.shared.changed.notify_all();
    }
}

/// How many of the messages `held` `pick` picks.
fn count(held: &[Held], pick: &impl Fn(&ServerMsg) -> bool) -> usize {
    let picked = |h: &&Held| decode_body::<ServerMsg>(&h.frame[4..]).is_ok_and(|(m, _)| pick(&m));
    held.iter().filter(picked).count()
}

impl Drop for LayoutHold {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        for s in (self.shared.live.lock().unwrap_or_else(|e| e.into_inner())).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}
