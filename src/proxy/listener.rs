//! The client-facing side: accept loop with the connection limit, the first request head read with its
//! timeout and size limit; an upgrade takes the fast path to the relay, anything else goes to
//! [`super::http`] (hyper).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::handshake::{self, First};
use super::prefixed::Prefixed;
use super::Shared;
use crate::events::{EventKind, RejectCause};

/// Decrements the open-connection gauge when the last holder (connection task or session) ends.
pub(super) struct Permit(Arc<Shared>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.stats.open_connections.fetch_sub(1, Relaxed);
    }
}

/// Accepts until shutdown; every connection runs in its own task.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => { backoff.reset(); x }
                Err(_) => {
                    // EMFILE and friends: back off (5 ms doubling to 1 s) instead of spinning.
                    backoff.wait().await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        shared.stats.accepted.fetch_add(1, Relaxed);
        let open = shared.stats.open_connections.fetch_add(1, Relaxed);
        let permit = Arc::new(Permit(shared.clone()));
        if open as usize >= shared.config.limits.max_connections {
            shared.stats.rejected_limit.fetch_add(1, Relaxed);
            tokio::spawn(refuse(stream, permit, shared.clone()));
            continue;
        }
        shared.sink.emit(None, EventKind::Accepted { client: peer });
        tokio::spawn(connection(stream, peer, permit, shared.clone()));
    }
}

/// Over the limit: a fixed 503 with Retry-After, written without parsing anything.
async fn refuse(stream: TcpStream, _permit: Arc<Permit>, shared: Arc<Shared>) {
    let body = "connection limit reached\n";
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let kind = EventKind::HandshakeRejected {
        duration: std::time::Duration::ZERO,
        status: 503,
        cause: RejectCause::ConnectionLimit,
    };
    shared.sink.emit(None, kind);
    handshake::finish(stream, resp.as_bytes()).await;
}

async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    permit: Arc<Permit>,
    shared: Arc<Shared>,
) {
    // Everything up to the session runs in its own boxed future, freed when the handshake is done, so
    // that an open session's task holds the relay's state and little else.
    let opened = Box::pin(handshake_phase(stream, client, permit.clone(), &shared)).await;
    if let Some(o) = opened {
        o.run(&shared).await;
    }
}

/// Reads the first request head: an upgrade takes the fast path (and returns the session to run),
/// anything else is served by hyper here.
async fn handshake_phase(
    mut stream: TcpStream,
    client: SocketAddr,
    permit: Arc<Permit>,
    shared: &Arc<Shared>,
) -> Option<handshake::Opened> {
    nodelay(&stream, shared);
    let limits = &shared.config.limits;
    let mut head = BytesMut::new();
    let first = handshake::read_first(
        &mut stream,
        &mut head,
        limits.max_header_size,
        limits.handshake_timeout,
    )
    .await?;
    match first {
        First::Upgrade(req) => handshake::open(stream, head, req, client, shared).await,
        First::TooLarge => {
            let msg = "request header fields too large";
            let resp = handshake::plain_response(431, msg, false);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                stream.write_all(&resp).await?;
                stream.shutdown().await
            })
            .await;
            None
        }
        First::Other => {
            let io = Prefixed::new(head.freeze(), stream);
            super::http::serve(io, client, permit, shared.clone()).await;
            None
        }
    }
}

/// TCP_NODELAY on an accepted socket. Linux copies it from the listener (set at bind): the first
/// connection checks that it did, and only if not does every connection set it (one system call each).
fn nodelay(stream: &TcpStream, shared: &Shared) {
    const UNKNOWN: u8 = 0;
    const INHERITED: u8 = 1;
    const PER_SOCKET: u8 = 2;
    let state = match shared.nodelay.load(Relaxed) {
        UNKNOWN if stream.nodelay().unwrap_or(false) => INHERITED,
        UNKNOWN => PER_SOCKET,
        s => s,
    };
    shared.nodelay.store(state, Relaxed);
    if state == PER_SOCKET {
        let _ = stream.set_nodelay(true);
    }
}

/// Backoff after a failed accept (EMFILE, ENFILE, ENOBUFS…): 5 ms doubling to 1 s, reset by the next
/// accepted connection. Retrying at once would spin a core while the condition lasts.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    next: std::time::Duration,
}

impl AcceptBackoff {
    /// Sleeps for the current delay and doubles it.
    pub async fn wait(&mut self) {
        let min = std::time::Duration::from_millis(5);
        let max = std::time::Duration::from_secs(1);
        self.next = (self.next * 2).clamp(min, max);
        tokio::time::sleep(self.next).await;
    }

    /// A connection was accepted: back to the shortest delay.
    pub fn reset(&mut self) {
        self.next = std::time::Duration::ZERO;
    }
}
