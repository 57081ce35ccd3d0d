//! The Remote backend: the server over one TCP connection with many calls in flight.
//! FUSE callbacks are synchronous: each sends its frame and waits on its own channel; one
//! reader thread routes replies by id.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use protocol::codec::{decode_body, encode_frame, encode_frame_head, read_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use volume::{Attr, DirEntry, FsError, FsResult, RenameFlags, SetAttr, StatFs};

use crate::backend::Backend;

type Reply = (Result<Response, i32>, Vec<u8>);

struct Conn {
    writer: Mutex<TcpStream>,
    pending: Mutex<HashMap<u64, Sender<Reply>>>,
    next_id: AtomicU64,
    dead: AtomicBool,
}

pub struct RemoteBackend {
    conn: Arc<Conn>,
    pub session: u64,
}

fn io_err() -> FsError {
    FsError::Io(std::io::Error::from_raw_os_error(libc::EIO))
}

impl RemoteBackend {
    /// Connect and say hello; a refusal comes back as its reason.
    pub fn connect(addr: &str, node_id: &str, read_only: bool) -> Result<RemoteBackend, String> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr}: no address"))?;
        let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .map_err(|e| format!("cannot reach the server at {addr}: {e}"))?;
        stream.set_nodelay(true).ok();
        let mount_id = std::process::id() as u64
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64);
        let hello = ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            node_id: node_id.into(),
            mount_id,
            read_only,
        };
        stream
            .write_all(&encode_frame(&hello, &[]).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{addr}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let body =
            read_frame(&mut stream).map_err(|e| format!("{addr}: no answer to hello: {e}"))?;
        stream.set_read_timeout(None).ok();
        let (msg, _) = decode_body::<ServerMsg>(&body).map_err(|e| format!("{addr}: {e}"))?;
        let (session, lease) = match msg {
            ServerMsg::Welcome {
                session,
                lease_secs,
                ..
            } => (session, lease_secs),
            ServerMsg::Refused { reason } => {
                return Err(format!("the server refused the mount: {reason}"))
            }
            other => return Err(format!("{addr}: unexpected answer to hello: {other:?}")),
        };
        let reader = stream.try_clone().map_err(|e| e.to_string())?;
        let conn = Arc::new(Conn {
            writer: Mutex::new(stream),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            dead: AtomicBool::new(false),
        });
        let c = conn.clone();
        thread::Builder::new()
            .name("rwxfs-reader".into())
            .spawn(move || reader_loop(reader, c))
            .map_err(|e| e.to_string())?;
        let weak = Arc::downgrade(&conn);
        let every = Duration::from_secs((lease as u64 / 3).max(1));
        thread::Builder::new()
            .name("rwxfs-heartbeat".into())
            .spawn(move || loop {
                thread::sleep(every);
                let Some(c) = weak.upgrade() else { return };
                if c.dead.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(f) = encode_frame(&ClientMsg::Heartbeat, &[]) {
                    let _ = c
                        .writer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .write_all(&f);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(RemoteBackend { conn, session })
    }

    fn call_bulk(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)> {
        if self.conn.dead.load(Ordering::Relaxed) {
            return Err(io_err());
        }
        let id = self.conn.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel();
        self.conn
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let head = encode_frame_head(&ClientMsg::Call { id, req }, bulk.len())
            .map_err(|_| FsError::Invalid)?;
        {
            let mut w = self.conn.writer.lock().unwrap_or_else(|e| e.into_inner());
            let sent = w.write_all(&head).and_then(|_| {
                if bulk.is_empty() {
                    Ok(())
                } else {
                    w.write_all(bulk)
                }
            });
            if sent.is_err() {
                self.conn.dead.store(true, Ordering::Relaxed);
                self.conn
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                return Err(io_err());
            }
        }
        let (r, data) = rx.recv().map_err(|_| io_err())?;
        match r {
            Ok(resp) => Ok((resp, data)),
            Err(errno) => Err(FsError::from_errno(errno)),
        }
    }

    fn call(&self, req: Request) -> FsResult<Response> {
        self.call_bulk(req, &[]).map(|(r, _)| r)
    }

    fn attr(&self, req: Request) -> FsResult<Attr> {
        match self.call(req)? {
            Response::Attr(a) => Ok(a),
            _ => Err(io_err()),
        }
    }

    fn empty(&self, req: Request) -> FsResult<()> {
        self.call(req).map(|_| ())
    }
}

fn reader_loop(mut stream: TcpStream, conn: Arc<Conn>) {
    loop {
        let mut body = match read_frame(&mut stream) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("connection to the server lost: {e}");
                break;
            }
        };
        let (msg, bulk_start) = match decode_body::<ServerMsg>(&body) {
            Ok((m, bulk)) => (m, body.len() - bulk.len()),
            Err(e) => {
                tracing::error!("malformed message from the server: {e}");
                break;
            }
        };
        match msg {
            ServerMsg::Reply { id, result } => {
                let tx = conn
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                if let Some(tx) = tx {
                    // Read data is handed over in the frame's own buffer, not copied out.
                    body.drain(..bulk_start);
                    let _ = tx.send((result, body));
                }
            }
            ServerMsg::Push(p) => tracing::debug!("push: {p:?}"),
            other => tracing::warn!("unexpected message: {other:?}"),
        }
    }
    conn.dead.store(true, Ordering::Relaxed);
    // Fail every waiting call: dropping the senders wakes them with an error.
    conn.pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

impl Backend for RemoteBackend {
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        self.attr(Request::Lookup {
            parent,
            name: name.to_vec(),
        })
    }
    fn getattr(&self, ino: u64) -> FsResult<Attr> {
        self.attr(Request::Getattr { ino })
    }
    fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        self.attr(Request::Setattr { ino, set })
    }
    fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.attr(Request::Mknod {
            parent,
            name: name.to_vec(),
            mode,
            rdev,
            uid,
            gid,
        })
    }
    fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        self.attr(Request::Mkdir {
            parent,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        })
    }
    fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.attr(Request::Symlink {
            parent,
            name: name.to_vec(),
            target: target.to_vec(),
            uid,
            gid,
        })
    }
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        self.attr(Request::Link {
            ino,
            newparent,
            newname: newname.to_vec(),
        })
    }
    fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        self.empty(Request::Unlink {
            parent,
            name: name.to_vec(),
        })
    }
    fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        self.empty(Request::Rmdir {
            parent,
            name: name.to_vec(),
        })
    }
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.empty(Request::Rename {
            parent,
            name: name.to_vec(),
            newparent,
            newname: newname.to_vec(),
            noreplace: flags.noreplace,
            exchange: flags.exchange,
        })
    }
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        match self.call(Request::Readlink { ino })? {
            Response::Bytes(b) => Ok(b),
            _ => Err(io_err()),
        }
    }
    fn readdir(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        match self.call(Request::Readdir {
            ino,
            offset,
            max: max as u32,
        })? {
            Response::Entries(e) => Ok(e),
            _ => Err(io_err()),
        }
    }
    fn readdirplus(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<(DirEntry, Attr)>> {
        match self.call(Request::Readdirplus {
            ino,
            offset,
            max: max as u32,
        })? {
            Response::EntriesPlus(e) => Ok(e),
            _ => Err(io_err()),
        }
    }
    fn create(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        self.attr(Request::Create {
            parent,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        })
    }
    fn open(&self, ino: u64, flags: i32) -> FsResult<Attr> {
        self.attr(Request::Open { ino, flags })
    }
    fn release(&self, ino: u64) -> FsResult<()> {
        self.empty(Request::Release { ino })
    }
    fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        match self.call_bulk(Request::Read { ino, offset, size }, &[])? {
            (Response::Data, d) => Ok(d),
            _ => Err(io_err()),
        }
    }
    fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        match self.call_bulk(Request::Write { ino, offset }, data)? {
            (Response::Written(n), _) => Ok(n),
            _ => Err(io_err()),
        }
    }
    fn append(&self, ino: u64, data: &[u8]) -> FsResult<u32> {
        match self.call_bulk(Request::Append { ino }, data)? {
            (Response::Written(n), _) => Ok(n),
            _ => Err(io_err()),
        }
    }
    fn flush(&self, _ino: u64) -> FsResult<()> {
        // Writes are sent synchronously: by close they are on the server.
        Ok(())
    }
    fn fsync(&self, ino: u64) -> FsResult<()> {
        self.empty(Request::Fsync { ino })
    }
    fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        self.empty(Request::Fallocate {
            ino,
            offset,
            len,
            mode,
        })
    }
    fn statfs(&self) -> FsResult<StatFs> {
        match self.call(Request::Statfs)? {
            Response::StatFs(s) => Ok(s),
            _ => Err(io_err()),
        }
    }
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        match self.call(Request::Getxattr {
            ino,
            name: name.to_vec(),
        })? {
            Response::Bytes(b) => Ok(b),
            _ => Err(io_err()),
        }
    }
    fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        self.empty(Request::Setxattr {
            ino,
            name: name.to_vec(),
            value: value.to_vec(),
            flags,
        })
    }
    fn listxattr(&self, ino: u64) -> FsResult<Vec<Vec<u8>>> {
        match self.call(Request::Listxattr { ino })? {
            Response::Names(n) => Ok(n),
            _ => Err(io_err()),
        }
    }
    fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        self.empty(Request::Removexattr {
            ino,
            name: name.to_vec(),
        })
    }
    fn shutdown(&self) -> FsResult<()> {
        if let Ok(w) = self.conn.writer.lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        Ok(())
    }
}
