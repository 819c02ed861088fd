//! A WebSocket session after the upgrade: runs both directions in one task, decides how the session ends
//! (relayed close, a peer vanishing, a protocol violation, shutdown, idle), sends the sidecar's own close
//! frames where a policy says so, and reports the close and the session's totals as events.
//!
//! Close codes the sidecar itself sends to the client:
//! - 1001 Going Away: the sidecar is shutting down, or the session was idle past `limits.idle_timeout_ms`;
//! - 1002 / 1007 / 1009: the client broke RFC 6455 (the rule decides the code, see [`ProtocolRule`]);
//! - 1011 Internal Error: the heartbeat found the upstream dead (it stopped answering pings);
//! - 1012 Service Restart: the upstream's TCP connection ended without a close frame (the dashboard
//!   restarted or crashed), so clients reconnect with their own backoff;
//! - 1014 Bad Gateway: the upstream broke RFC 6455.
//!
//! Toward the upstream the sidecar sends 1001 when the client vanished or the sidecar shuts down, and the
//! rule's code when the upstream broke a rule.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::frame;
use super::heartbeat::{self, Beat, PeerBeat};
use super::pump::{idx, write_all, Outcome, Pump, Shared};
use super::{resume, SessionCtx};
use crate::events::{Direction, EventKind, Initiator, Peer};

type PumpFuture<'a> = Pin<Box<Pump<'a>>>;

/// Counts the session in `active_sessions` while it runs.
struct Active<'a>(&'a super::Stats);

impl<'a> Active<'a> {
    fn new(stats: &'a super::Stats) -> Self {
        stats.active_sessions.fetch_add(1, Relaxed);
        Active(stats)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active_sessions.fetch_sub(1, Relaxed);
    }
}

/// How the session ended, for the Close event: the code the client got (or sent) and the one the
/// upstream got (or sent).
pub struct Ending {
    /// The close code the client received or sent.
    pub code: u16,
    /// The close code the upstream received or sent.
    pub upstream_code: u16,
    /// The close reason.
    pub reason: String,
    /// Who closed.
    pub initiator: Initiator,
}

pub(super) fn mask() -> [u8; 4] {
    rand::random()
}

/// How one relaying phase (one upstream connection) ended.
enum Phase {
    /// The session is over.
    Ended(Ending),
    /// The upstream is gone at a message boundary: hold the session (`resume`).
    Lost(resume::Lost),
}

/// Runs a session to its end. `*_pre` are bytes already read past the HTTP heads.
///
/// An async block rather than an `async fn`, so that the arguments are stored once in the session's
/// future (an `async fn` keeps them twice); the ways a session ends are boxed futures, allocated only
/// when it ends, so that an idle session's future holds just what relaying needs. With resume on, a
/// lost upstream is replaced by a new one and relaying goes on with the same client connection.
pub fn run(
    client: TcpStream,
    client_pre: Bytes,
    upstream: TcpStream,
    upstream_pre: Bytes,
    ctx: SessionCtx,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    let mut shutdown = shutdown;
    let mut ctx = ctx;
    let mut upstream = upstream;
    let (mut client_pre, mut upstream_pre) = (client_pre, upstream_pre);
    async move {
        let _active = Active::new(&ctx.stats);
        let started = Instant::now();
        let shared = Shared::default();
        // Emits SessionEnded however this future stops (dropped mid-session too).
        let mut end = super::guard::SessionEnd::new(&ctx.sink, ctx.info.clone(), &shared, started);
        let hb = ctx.heartbeat;
        let mut beats = [PeerBeat::new(started, &hb), PeerBeat::new(started, &hb)];
        // Boxed: a session holds 8 bytes for it, and only a resumed one allocates.
        let mut resumed: Option<Box<resume::hold::Resumed>> = None;
        let ending = loop {
            // The relay phase is written inline (not a future of its own), so that an idle session's
            // future holds its state once.
            // The first phase walks the bytes read past the handshake; a resumed one, those of the hold.
            let (client_pre, upstream_pre) = match resumed.take() {
                Some(r) => (r.client_pre, r.upstream_pre),
                None => (
                    std::mem::take(&mut client_pre),
                    std::mem::take(&mut upstream_pre),
                ),
            };
            let phase = 'relay: {
                // Both sockets already have TCP_NODELAY: the listener sets it on accepted clients and
                // `upstream::dial` on the upstream; setting it again here cost two system calls per session.
                let c2u = Direction::ClientToUpstream;
                let u2c = Direction::UpstreamToClient;
                let mut a: PumpFuture = Box::pin(
                    Pump::new(&client, &upstream, c2u, &ctx, &shared, &started).run(client_pre),
                );
                let mut b: PumpFuture = Box::pin(
                    Pump::new(&upstream, &client, u2c, &ctx, &shared, &started).run(upstream_pre),
                );

                let idle = ctx.idle_timeout;
                // Boxed only when an idle timeout is configured (a pending `Box` of nothing does not allocate).
                let mut idle_check: Pin<Box<dyn Future<Output = ()> + Send + '_>> = if idle
                    .is_zero()
                {
                    Box::pin(std::future::pending::<()>())
                } else {
                    Box::pin(async {
                        loop {
                            let last = Duration::from_millis(shared.last_activity_ms.load(Relaxed));
                            let due = started + last + idle;
                            if Instant::now() >= due {
                                return;
                            }
                            tokio::time::sleep_until(due.into()).await;
                        }
                    })
                };
                let stop = async {
                    while !*shutdown.borrow_and_update() {
                        if shutdown.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                };
                tokio::pin!(stop);

                let hb = ctx.heartbeat;
                let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
                let next =
                    |beats: &[PeerBeat; 2]| beats[0].deadline(&hb).min(beats[1].deadline(&hb));
                let hb_sleep = tokio::time::sleep_until(if hb.enabled {
                    next(&beats).into()
                } else {
                    far()
                });
                tokio::pin!(hb_sleep);

                let ending = loop {
                    tokio::select! {
                        o = &mut a => break Box::pin(finish_one(c2u, o, b, (&client, &upstream), &ctx, &shared, None)).await,
                        o = &mut b => {
                            let mut not_held = None;
                            match resume::verdict(&ctx, Some(&o), &b, &a) {
                                resume::Verdict::Hold(lost) => break 'relay Phase::Lost(lost),
                                resume::Verdict::GiveUp(reason) => {
                                    resume::gave_up(&ctx, reason, Duration::ZERO, 0);
                                    not_held = Some(reason);
                                    if let (true, Outcome::Closed { code, reason }) = (b.close_held(), &o) {
                                        // The restart's close was kept from the client: it gets it now, as it would have.
                                        let f = frame::close_frame(*code, reason, None);
                                        let _ = Box::pin(write_all(&client, &f, &shared.writing[idx(u2c)])).await;
                                    }
                                }
                                resume::Verdict::NotMine => {}
                            }
                            break Box::pin(finish_one(u2c, o, a, (&client, &upstream), &ctx, &shared, not_held)).await
                        }
                        _ = &mut stop => {
                            let (ca, cb) = cancel(a, b, &shared);
                            break Box::pin(sidecar_close(&client, &upstream, 1001, "sidecar shutting down", ca, cb, &ctx)).await;
                        }
                        _ = &mut idle_check => {
                            let (ca, cb) = cancel(a, b, &shared);
                            break Box::pin(sidecar_close(&client, &upstream, 1001, "idle timeout", ca, cb, &ctx)).await;
                        }
                        _ = &mut hb_sleep => {
                            let now = Instant::now();
                            let (client_ok, upstream_ok) = shared.at_boundary();
                            let mut dead = None;
                            for (i, peer) in [Peer::Client, Peer::Upstream].into_iter().enumerate() {
                                match beats[i].tick(now, shared.pongs.count(peer), &hb) {
                                    Beat::Ping => {
                                        let payload = heartbeat::ping_payload(started.elapsed());
                                        let (stream, ok, mask) = if peer == Peer::Client { (&client, client_ok, None) } else { (&upstream, upstream_ok, Some(mask())) };
                                        // Only between frames; a ping skipped here is simply not answered (a missed beat).
                                        if ok {
                                            shared.pongs.expect(peer, &payload);
                                            let f = frame::build_frame(0x9, &payload, mask);
                                            let flag = &shared.writing[idx(if peer == Peer::Client { u2c } else { c2u })];
                                            let _ = Box::pin(tokio::time::timeout(hb.timeout, write_all(stream, &f, flag))).await;
                                        }
                                    }
                                    Beat::Dead(missed) => dead = Some((peer, missed)),
                                    Beat::Wait => {}
                                }
                            }
                            if let Some((peer, missed)) = dead {
                                ctx.sink.emit(Some(&ctx.info), EventKind::HeartbeatTimeout { peer, missed });
                                if peer == Peer::Upstream {
                                    match resume::verdict(&ctx, None, &b, &a) {
                                        resume::Verdict::Hold(lost) => break 'relay Phase::Lost(lost),
                                        resume::Verdict::GiveUp(r) => resume::gave_up(&ctx, r, Duration::ZERO, 0),
                                        resume::Verdict::NotMine => {}
                                    }
                                }
                                let (client_ok, upstream_ok) = cancel(a, b, &shared);
                                break Box::pin(heartbeat_close(peer, &client, &upstream, (client_ok, upstream_ok), &ctx)).await;
                            }
                            hb_sleep.as_mut().reset(next(&beats).into());
                        }
                    }
                };
                Phase::Ended(ending)
            };
            let lost = match phase {
                Phase::Ended(ending) => break ending,
                Phase::Lost(lost) => lost,
            };
            let state = resume::hold::State {
                client: &client,
                shared: &shared,
                started,
                beats: &mut beats,
                shutdown: &mut shutdown,
            };
            match Box::pin(resume::hold::hold(state, lost, &ctx)).await {
                resume::hold::Held::Resumed(mut r) => {
                    upstream = std::mem::replace(&mut r.upstream, upstream);
                    ctx.info = r.info.clone();
                    end.retarget(r.info.clone());
                    resumed = Some(r);
                    beats[1] = PeerBeat::new(Instant::now(), &hb);
                }
                resume::hold::Held::Ended(ending) => break ending,
            }
        };
        end.ended(ending.code, ending.upstream_code, ending.initiator);
    }
}

/// Drops both pumps; returns (client_ok, upstream_ok): whether a frame may still be written to each side.
fn cancel(a: PumpFuture<'_>, b: PumpFuture<'_>, shared: &Shared) -> (bool, bool) {
    drop(a);
    drop(b);
    shared.at_boundary()
}

pub(super) fn emit_close(ctx: &SessionCtx, e: &Ending) {
    let kind = EventKind::Close {
        code: e.code,
        upstream_code: e.upstream_code,
        reason: crate::events::reason_text(&e.reason),
        initiator: e.initiator,
    };
    ctx.sink.emit(Some(&ctx.info), kind);
}

/// One direction ended first with `o`; `other` is the still-running opposite direction. `not_held`: why
/// a restart was not held (resume on), told to the client in its close reason.
async fn finish_one(
    dir: Direction,
    o: Outcome,
    other: PumpFuture<'_>,
    (client, upstream): (&TcpStream, &TcpStream),
    ctx: &SessionCtx,
    shared: &Shared,
    not_held: Option<crate::events::ResumeGaveUp>,
) -> Ending {
    let from_client = dir == Direction::ClientToUpstream;
    let source = if from_client {
        Initiator::Client
    } else {
        Initiator::Upstream
    };
    if let Outcome::Closed { code, reason } = o {
        // Relayed as is: both sides see the same code.
        let ending = Ending {
            code,
            upstream_code: code,
            reason,
            initiator: source,
        };
        emit_close(ctx, &ending);
        // Let the other side answer with its own close (or hang up) within the close timeout.
        let _ = tokio::time::timeout(ctx.close_timeout, other).await;
        // Both sockets are closed as the session ends (close() sends the FIN): no shutdown calls.
        return ending;
    }
    drop(other);
    let (client_ok, upstream_ok) = shared.at_boundary();
    let ending = match o {
        Outcome::Violation(rule) => {
            let peer = if from_client {
                Peer::Client
            } else {
                Peer::Upstream
            };
            ctx.sink
                .emit(Some(&ctx.info), EventKind::ProtocolError { peer, rule });
            let reason = format!("{} protocol error: {}", source.as_str(), rule.as_str());
            let to_client = if from_client { rule.close_code() } else { 1014 };
            let codes = (to_client, rule.close_code());
            let ending = Ending {
                code: codes.0,
                upstream_code: codes.1,
                reason,
                initiator: Initiator::Sidecar,
            };
            emit_close(ctx, &ending);
            send_closes(
                client,
                upstream,
                codes,
                &ending.reason,
                (client_ok, upstream_ok),
                ctx,
            )
            .await;
            return ending;
        }
        // A write failing means the destination vanished; a read ending means the source did.
        Outcome::WriteError(_) if from_client => Initiator::Upstream,
        Outcome::WriteError(_) => Initiator::Client,
        _ => source,
    };
    let gone = ending;
    let reason = if gone == Initiator::Client {
        "client connection lost"
    } else {
        "upstream connection lost"
    };
    // The vanished side's code is 1006; the live side gets the sidecar's close (1012 to a client whose
    // upstream went away, 1001 to an upstream whose client did).
    let (code, upstream_code) = if gone == Initiator::Upstream {
        (1012, 1006)
    } else {
        (1006, 1001)
    };
    let ending = Ending {
        code,
        upstream_code,
        reason: reason.into(),
        initiator: gone,
    };
    emit_close(ctx, &ending);
    match gone {
        Initiator::Upstream => {
            let told = match not_held {
                Some(r) => format!("upstream went away (not resumed: {})", r.as_str()),
                None => "upstream went away".to_string(),
            };
            send_one(client, code, &told, None, client_ok, ctx).await
        }
        _ => {
            send_one(
                upstream,
                upstream_code,
                "client went away",
                Some(mask()),
                upstream_ok,
                ctx,
            )
            .await
        }
    }
    ending
}

/// A peer stopped answering heartbeats: close cleanly toward the live side (1001 to the upstream when
/// the client is dead, 1011 to the client when the upstream is), and drop the dead side's connection.
async fn heartbeat_close(
    dead: Peer,
    client: &TcpStream,
    upstream: &TcpStream,
    ok: (bool, bool),
    ctx: &SessionCtx,
) -> Ending {
    let reason = format!("{} heartbeat timeout", dead.as_str());
    let ending = Ending {
        code: if dead == Peer::Client { 1001 } else { 1011 },
        upstream_code: 1001,
        reason: reason.clone(),
        initiator: Initiator::Sidecar,
    };
    emit_close(ctx, &ending);
    match dead {
        // The dead peer gets a close frame if its socket takes it now (a stalled peer that wakes up
        // learns why), without waiting for it; then the FIN.
        Peer::Client => {
            if ok.0 {
                let _ = client.try_write(&frame::close_frame(1001, &reason, None));
            }
            shutdown_write(client);
            send_one(upstream, 1001, &reason, Some(mask()), ok.1, ctx).await;
        }
        Peer::Upstream => {
            if ok.1 {
                let _ = upstream.try_write(&frame::close_frame(1001, &reason, Some(mask())));
            }
            shutdown_write(upstream);
            send_one(client, 1011, &reason, None, ok.0, ctx).await;
        }
    }
    ending
}

/// The sidecar closes both sides with the same code (shutdown, idle).
async fn sidecar_close(
    client: &TcpStream,
    upstream: &TcpStream,
    code: u16,
    reason: &str,
    client_ok: bool,
    upstream_ok: bool,
    ctx: &SessionCtx,
) -> Ending {
    let ending = Ending {
        code,
        upstream_code: code,
        reason: reason.into(),
        initiator: Initiator::Sidecar,
    };
    emit_close(ctx, &ending);
    send_closes(
        client,
        upstream,
        (code, code),
        reason,
        (client_ok, upstream_ok),
        ctx,
    )
    .await;
    ending
}

async fn send_closes(
    client: &TcpStream,
    upstream: &TcpStream,
    codes: (u16, u16),
    reason: &str,
    ok: (bool, bool),
    ctx: &SessionCtx,
) {
    tokio::join!(
        send_one(client, codes.0, reason, None, ok.0, ctx),
        send_one(upstream, codes.1, reason, Some(mask()), ok.1, ctx),
    );
}

/// Sends a close frame (when the stream is at a frame boundary) and waits for the peer's close or EOF.
pub(super) async fn send_one(
    s: &TcpStream,
    code: u16,
    reason: &str,
    mask: Option<[u8; 4]>,
    at_boundary: bool,
    ctx: &SessionCtx,
) {
    if at_boundary {
        let f = frame::close_frame(code, reason, mask);
        let flag = std::sync::atomic::AtomicBool::new(false);
        let sent = tokio::time::timeout(ctx.close_timeout, write_all(s, &f, &flag)).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(ctx.close_timeout, drain_until_close(s)).await;
        }
    }
    shutdown_write(s);
}

/// Reads and discards frames until a close frame or EOF.
async fn drain_until_close(s: &TcpStream) {
    let mut buf = vec![0u8; 4096];
    let mut have = 0usize;
    let mut skip = 0u64;
    loop {
        if s.readable().await.is_err() {
            return;
        }
        match s.try_read(&mut buf[have..]) {
            Ok(0) => return,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
        loop {
            if skip > 0 {
                let t = skip.min(have as u64) as usize;
                buf.copy_within(t..have, 0);
                have -= t;
                skip -= t as u64;
                if skip > 0 {
                    break;
                }
            }
            match frame::parse_header(&buf[..have]) {
                frame::Parsed::Header(h) if h.opcode == 0x8 => return,
                frame::Parsed::Header(h) => {
                    buf.copy_within(h.header_len..have, 0);
                    have -= h.header_len;
                    skip = h.len;
                }
                frame::Parsed::Invalid(_) => return,
                frame::Parsed::Incomplete => break,
            }
        }
        if have == buf.len() {
            return;
        }
    }
}

/// Half-closes our sending side (FIN) without needing `&mut`.
pub(super) fn shutdown_write(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
}
