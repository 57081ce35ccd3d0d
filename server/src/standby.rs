//! A standby server: it listens where it will serve once it takes over, and answers every
//! connection — a mount's greeting or `rwxfs status` — with `ServerMsg::Standby`, naming the
//! active server, so a client with several addresses moves on at once instead of waiting.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use protocol::codec::encode_frame;
use protocol::{ServerMsg, MAX_FRAME};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

/// Who is active, asked afresh for each connection.
pub type Active = Arc<dyn Fn() -> String + Send + Sync>;

/// Answer connections on `listener` as a standby until `until` is cancelled; the listener is
/// then free for `serve`.
pub async fn answer(
    listener: &TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    active: Active,
    until: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = until.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (tls, active) = (tls.clone(), active.clone());
        tokio::spawn(async move {
            let step = Duration::from_secs(10);
            let _ = tokio::time::timeout(step, one(stream, tls, active)).await;
        });
    }
}

async fn one(stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>, active: Active) {
    match tls {
        None => greet(stream, &active).await,
        Some(acceptor) => {
            if let Ok(s) = acceptor.accept(stream).await {
                greet(s, &active).await
            }
        }
    }
}

/// Read the first frame (whatever it asks), answer `Standby`, close.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(stream: S, active: &Active) {
    let (rd, mut wr) = tokio::io::split(stream);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    if FramedRead::new(rd, codec).next().await.is_none() {
        return;
    }
    let msg = ServerMsg::Standby { active: active() };
    if let Ok(frame) = encode_frame(&msg, &[]) {
        let _ = wr.write_all(&frame).await;
        let _ = wr.shutdown().await;
    }
}
