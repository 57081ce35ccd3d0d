//! A TCP proxy between mounts and the server that a test can cut: every connection through it
//! is torn down at once, as a network fault would, while the proxy keeps accepting new ones.
//! Its threads stop and its sockets close when it drops.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A TCP proxy between mounts and a server that can cut every connection through it.
pub struct Proxy {
    /// The address mounts dial instead of the server's.
    pub addr: String,
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    /// While set, new connections are closed at once: the network is down.
    refuse: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    /// While set, what the server sends is swallowed: calls arrive and run, replies are lost.
    mute: Arc<AtomicBool>,
    capture: Capture,
    acceptor: Option<JoinHandle<()>>,
}

/// Everything that crossed the proxy, both ways (up to 64 MiB).
type Capture = Arc<Mutex<Vec<u8>>>;
const CAPTURE_MAX: usize = 64 << 20;

fn pump(mut from: TcpStream, mut to: TcpStream, capture: Capture, mute: Option<Arc<AtomicBool>>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if mute.as_ref().is_some_and(|m| m.load(Ordering::SeqCst)) => continue,
            Ok(n) => {
                {
                    let mut c = capture.lock().unwrap_or_else(|e| e.into_inner());
                    if c.len() + n <= CAPTURE_MAX {
                        c.extend_from_slice(&buf[..n]);
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Proxy {
    /// Listen on a free loopback port and forward each connection to `upstream`.
    pub fn start(upstream: &str) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let refuse = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let capture: Capture = Arc::default();
        let mute = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let acceptor = {
            let (live, stop, accepted) = (live.clone(), stop.clone(), accepted.clone());
            let refuse = refuse.clone();
            let capture = capture.clone();
            let mute = mute.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    if refuse.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let _ = client.set_nonblocking(false);
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                        continue;
                    };
                    {
                        let mut l = live.lock().unwrap_or_else(|e| e.into_inner());
                        l.retain(|s| s.peer_addr().is_ok());
                        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                            l.push(a);
                            l.push(b);
                        }
                    }
                    let cap = capture.clone();
                    std::thread::spawn(move || pump(client, s2, cap, None));
                    let cap = capture.clone();
                    let m = Some(mute.clone());
                    std::thread::spawn(move || pump(server, c2, cap, m));
                }
            })
        };
        Ok(Proxy {
            addr,
            live,
            stop,
            refuse,
            accepted,
            mute,
            capture,
            acceptor: Some(acceptor),
        })
    }

    /// Tear down every connection through the proxy now.
    pub fn cut(&self) {
        let mut l = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for s in l.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Take the network down (every connection cut, new ones refused) or bring it back.
    pub fn set_down(&self, down: bool) {
        self.refuse.store(down, Ordering::SeqCst);
        if down {
            self.cut();
        }
    }

    /// Swallow (or stop swallowing) everything the server sends: calls still reach it and
    /// run, but their replies are lost, as with a server that dies before its replies leave.
    pub fn set_mute(&self, mute: bool) {
        self.mute.store(mute, Ordering::SeqCst);
    }

    /// Every byte that crossed the proxy so far, both directions.
    pub fn captured(&self) -> Vec<u8> {
        self.capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}
