//! The hold: the upstream is gone, the client stays. While the sidecar dials the dashboard again
//! ([`super::reconnect`]), it answers the client's pings itself, keeps its own heartbeats to the client,
//! and holds the client's data frames in order, as received (masks and all), up to
//! `resume.buffer_bytes`. Once a 101 agrees and the client is between messages, the first messages
//! (`resume.replay_messages`) and the held ones go to the new upstream and relaying goes on.
//!
//! It ends the session instead, as without resume, when the hold window passes, the buffer fills or the
//! new 101 disagrees (1012 to the client, the reason in its close reason), on SIGTERM (1001), when the
//! client closes or vanishes, breaks a rule, or stops answering heartbeats.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::frames::{ClientFrames, Stop};
use super::reconnect::{self, Connected};
use super::{gave_up, Lost, LostCause};
use crate::events::{Direction, EventKind, Initiator, Peer, ResumeGaveUp, SessionInfo};
use crate::proxy::frame;
use crate::proxy::heartbeat::{self, Beat, PeerBeat};
use crate::proxy::pump::{idx, write_all, Shared};
use crate::proxy::relay::{emit_close, send_one, shutdown_write, Ending};
use crate::proxy::SessionCtx;

/// What the hold borrows from the session.
pub struct State<'a> {
    /// The client's socket.
    pub client: &'a TcpStream,
    /// The session's shared counters.
    pub shared: &'a Shared,
    /// When the session started (heartbeat payloads count from it).
    pub started: Instant,
    /// Heartbeat state per peer (client first).
    pub beats: &'a mut [PeerBeat; 2],
    /// Flips on SIGTERM.
    pub shutdown: &'a mut watch::Receiver<bool>,
}

/// How a hold ended.
pub enum Held {
    /// A new upstream connection carries the session.
    Resumed(Box<Resumed>),
    /// The session is over.
    Ended(Ending),
}

/// A new upstream connection, and the bytes each side has that the pumps must walk first.
pub struct Resumed {
    /// The new connection (the relay swaps it for the old one, which is closed with this).
    pub upstream: TcpStream,
    /// The session's identity, naming the upstream that took it.
    pub info: Arc<SessionInfo>,
    /// The start of a client frame read during the hold and not yet forwarded.
    pub client_pre: Bytes,
    /// Bytes the dashboard sent right after its 101.
    pub upstream_pre: Bytes,
}

/// What ended one wait of the hold.
enum End {
    /// The client closed, vanished, broke a rule or passed the budget.
    Client(Stop),
    /// The client missed its heartbeats.
    ClientDead(u32),
    /// No resume.
    GaveUp(ResumeGaveUp),
    /// A new upstream connection agreed, and the client is between messages.
    Connected(Connected),
}

/// Holds the session until a new upstream carries it or it ends.
pub async fn hold(mut st: State<'_>, lost: Lost, ctx: &SessionCtx) -> Held {
    let t0 = Instant::now();
    let mut frames = ClientFrames {
        buf: lost.client_pending,
        ..Default::default()
    };
    let attempts = AtomicU32::new(0);
    let end = loop {
        let end = match frames.walk((st.shared, st.started), ctx) {
            Err(stop) => End::Client(stop),
            Ok(()) => wait(&mut st, ctx, &mut frames, t0, &attempts).await,
        };
        let End::Connected(c) = end else { break end };
        // The first messages, then the held ones, in the order the client sent them.
        let recorder = ctx.resume.as_ref().map(|p| &p.replay);
        let replay = recorder.and_then(|r| r.replay()).unwrap_or_default();
        if let Some(r) = recorder {
            r.tee(&frames.held);
        }
        let out = [replay.as_slice(), &frames.held].concat();
        let flag = &st.shared.writing[idx(Direction::ClientToUpstream)];
        let timeout = ctx
            .resume
            .as_ref()
            .map_or(Duration::ZERO, |p| p.shared.config.limits.upstream_timeout);
        let sent = tokio::time::timeout(timeout, write_all(&c.stream, &out, flag)).await;
        if matches!(sent, Ok(Ok(()))) {
            return Held::Resumed(resumed(&st, ctx, c, frames, (t0, attempts.load(Relaxed))));
        }
        // The new connection failed at once: dial again while the window lasts.
    };
    let took = (t0, attempts.load(Relaxed));
    Held::Ended(match end {
        End::Client(stop) => client_ended(&st, ctx, stop, lost.cause, took).await,
        End::ClientDead(missed) => {
            let kind = EventKind::HeartbeatTimeout {
                peer: Peer::Client,
                missed,
            };
            ctx.sink.emit(Some(&ctx.info), kind);
            let reason = "client heartbeat timeout";
            let ending = Ending {
                code: 1001,
                upstream_code: lost.cause.upstream_code(),
                reason: reason.into(),
                initiator: Initiator::Sidecar,
            };
            emit_close(ctx, &ending);
            let _ = st.client.try_write(&frame::close_frame(1001, reason, None));
            shutdown_write(st.client);
            ending
        }
        End::GaveUp(reason) => give_up(&st, ctx, lost.cause, reason, took).await,
        End::Connected(_) => unreachable!("a connection resumes the session"),
    })
}

/// Waits for the first of: a new upstream (with the client between messages), the client ending, the
/// window passing, SIGTERM; answers pings and sends heartbeats meanwhile.
async fn wait(
    st: &mut State<'_>,
    ctx: &SessionCtx,
    frames: &mut ClientFrames,
    t0: Instant,
    attempts: &AtomicU32,
) -> End {
    let Some(plan) = ctx.resume.as_ref() else {
        return End::GaveUp(ResumeGaveUp::Timeout);
    };
    let settings = plan.settings;
    let deadline = t0 + settings.hold;
    let mut connect = Box::pin(reconnect::until(plan, deadline, attempts));
    let mut connected: Option<Connected> = None;
    let hb = ctx.heartbeat;
    let far = t0 + Duration::from_secs(365 * 24 * 3600);
    let next_beat = |b: &PeerBeat| if hb.enabled { b.deadline(&hb) } else { far };
    let hb_sleep = tokio::time::sleep_until(next_beat(&st.beats[0]).into());
    tokio::pin!(hb_sleep);
    let window = tokio::time::sleep_until(deadline.into());
    tokio::pin!(window);
    let to_client = &st.shared.writing[idx(Direction::UpstreamToClient)];
    loop {
        if !frames.replies.is_empty() {
            let r = std::mem::take(&mut frames.replies);
            let _ = tokio::time::timeout(
                hb.timeout.max(Duration::from_secs(1)),
                write_all(st.client, &r, to_client),
            )
            .await;
        }
        if !frames.in_message {
            if let Some(c) = connected.take() {
                return End::Connected(c);
            }
        }
        tokio::select! {
            r = st.client.readable() => {
                let read = match r {
                    Ok(()) => frames.read(st.client, (st.shared, st.started), ctx, settings.buffer_bytes),
                    Err(_) => Err(Stop::Gone),
                };
                if let Err(stop) = read {
                    return End::Client(stop);
                }
            }
            c = &mut connect, if connected.is_none() => match c {
                Ok(c) => connected = Some(c),
                Err(reason) => return End::GaveUp(reason),
            },
            _ = &mut window => return End::GaveUp(ResumeGaveUp::Timeout),
            _ = st.shutdown.wait_for(|s| *s) => return End::GaveUp(ResumeGaveUp::Shutdown),
            _ = &mut hb_sleep => {
                match st.beats[0].tick(Instant::now(), st.shared.pongs.count(Peer::Client), &hb) {
                    Beat::Ping => {
                        let payload = heartbeat::ping_payload(st.started.elapsed());
                        st.shared.pongs.expect(Peer::Client, &payload);
                        frames.replies.extend(frame::build_frame(0x9, &payload, None));
                    }
                    Beat::Dead(missed) => return End::ClientDead(missed),
                    Beat::Wait => {}
                }
                hb_sleep.as_mut().reset(next_beat(&st.beats[0]).into());
            }
        }
    }
}

/// The session goes on with `c`: counts the held messages, names the new upstream, emits `Resumed`.
fn resumed(
    st: &State<'_>,
    ctx: &SessionCtx,
    c: Connected,
    frames: ClientFrames,
    (t0, attempts): (Instant, u32),
) -> Box<Resumed> {
    let i = idx(Direction::ClientToUpstream);
    let add = |a: &std::sync::atomic::AtomicU64, n: u64| a.fetch_add(n, Relaxed);
    add(&st.shared.messages[i], frames.messages);
    add(&st.shared.bytes[i], frames.bytes);
    // The hold was not idleness: the idle timeout counts from the resume.
    let now = st.started.elapsed().as_millis() as u64;
    st.shared.last_activity_ms.store(now, Relaxed);
    let mut info = ctx.info.clone();
    crate::proxy::upstream::retarget(&mut info, &c.name, &c.upstream);
    let kind = EventKind::Resumed {
        gap: t0.elapsed(),
        attempts,
        upstream: c.name,
    };
    ctx.sink.emit(Some(&info), kind);
    Box::new(Resumed {
        upstream: c.stream,
        info,
        client_pre: Bytes::from(frames.buf),
        upstream_pre: c.pre,
    })
}

/// The client ended the hold: as it would have ended the session without one.
async fn client_ended(
    st: &State<'_>,
    ctx: &SessionCtx,
    stop: Stop,
    cause: LostCause,
    took: (Instant, u32),
) -> Ending {
    // The dashboard's side ended when the hold began.
    let upstream_code = cause.upstream_code();
    let (ending, reply) = match stop {
        Stop::Gone => {
            let e = Ending {
                code: 1006,
                upstream_code,
                reason: "client connection lost".into(),
                initiator: Initiator::Client,
            };
            (e, None)
        }
        Stop::Closed(code, reason) => {
            let reply = if code == 1005 { 1000 } else { code };
            (
                Ending {
                    code,
                    upstream_code,
                    reason,
                    initiator: Initiator::Client,
                },
                Some(reply),
            )
        }
        Stop::Violation(rule) => {
            ctx.sink.emit(
                Some(&ctx.info),
                EventKind::ProtocolError {
                    peer: Peer::Client,
                    rule,
                },
            );
            let reason = format!("client protocol error: {}", rule.as_str());
            let e = Ending {
                code: rule.close_code(),
                upstream_code,
                reason,
                initiator: Initiator::Sidecar,
            };
            (e, Some(rule.close_code()))
        }
        Stop::Full => {
            return give_up(st, ctx, LostCause::Vanished, ResumeGaveUp::BufferFull, took).await;
        }
    };
    emit_close(ctx, &ending);
    match reply {
        Some(code) => send_one(st.client, code, &ending.reason, None, true, ctx).await,
        None => shutdown_write(st.client),
    }
    ending
}

/// No resume: the client gets the close it gets without one (1012, or the upstream's own 1001 / 1012,
/// or 1011 for a dead upstream; 1001 on shutdown), its reason naming why the session was not held.
async fn give_up(
    st: &State<'_>,
    ctx: &SessionCtx,
    cause: LostCause,
    reason: ResumeGaveUp,
    (t0, attempts): (Instant, u32),
) -> Ending {
    gave_up(ctx, reason, t0.elapsed(), attempts);
    // What the client gets (`to_client`) is the session's close code; the upstream's is the cause's.
    let (to_client, why, initiator) = match (reason, cause) {
        (ResumeGaveUp::Shutdown, _) => (
            1001,
            "sidecar shutting down".to_string(),
            Initiator::Sidecar,
        ),
        (_, LostCause::Vanished) => (1012, "upstream connection lost".into(), Initiator::Upstream),
        (_, LostCause::Closed(c)) => (c, "upstream restarting".into(), Initiator::Upstream),
        (_, LostCause::Heartbeat) => (
            1011,
            "upstream heartbeat timeout".into(),
            Initiator::Sidecar,
        ),
    };
    let ending = Ending {
        code: to_client,
        upstream_code: cause.upstream_code(),
        reason: why,
        initiator,
    };
    emit_close(ctx, &ending);
    let told = match reason {
        ResumeGaveUp::Shutdown => ending.reason.clone(),
        r => format!("upstream went away (not resumed: {})", r.as_str()),
    };
    send_one(st.client, to_client, &told, None, true, ctx).await;
    ending
}
