//! Holding the prober's connection: heartbeats (RTT, missed pongs), the dashboard's own silence, the
//! outbox's flushes, and leaving a backup once the primary answers again.
//!
//! Frames go out through a writer task, so reading (pongs, the dashboard's messages) never waits behind
//! a large flush. Every ping the prober sends carries `iskra-probe:<seq>`. A pong for `seq` answers that
//! ping and every earlier one — TCP keeps frames in order, and RFC 6455 §5.5.3 lets a peer answer only
//! the latest of several pings — so the pong of the ping sent right after a flush, or of any later
//! ping, confirms that the dashboard read the whole batch ([`super::outbox`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::outbox::Outbox;
use super::{Prober, Ws};
use crate::events::{ConnectCause, EventKind, Peer, Transport};

/// The payload of the prober's ping number `seq`.
pub fn ping_payload(seq: u64) -> Vec<u8> {
    format!("iskra-probe:{seq}").into_bytes()
}

/// The number of the ping a pong answers, when it is one of the prober's.
pub fn pong_seq(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix("iskra-probe:")?
        .parse()
        .ok()
}

/// Writes batches of frames in order; ends at the first write error (or when its sender is dropped,
/// after writing what it was given).
fn writer(mut sink: SplitSink<Ws, Message>) -> (mpsc::UnboundedSender<Vec<Message>>, Task) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Message>>();
    let task = tokio::spawn(async move {
        while let Some(frames) = rx.recv().await {
            for f in frames {
                if sink.feed(f).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    (tx, Task(task))
}

/// A task aborted when the link is left.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Puts an unconfirmed flush back at the front of the outbox however the link is left (lost, moved,
/// shutdown dropping the future).
struct PutBack(Option<Arc<Outbox>>);

impl Drop for PutBack {
    fn drop(&mut self) {
        if let Some(o) = &self.0 {
            o.abort();
        }
    }
}

async fn batch_ready(o: Option<&Arc<Outbox>>) {
    match o {
        Some(o) => o.batch_ready().await,
        None => std::future::pending().await,
    }
}

/// The dashboard confirmed the flush; returns how many messages are still queued.
async fn confirm(o: &Arc<Outbox>) -> usize {
    let o = o.clone();
    tokio::task::spawn_blocking(move || o.ack())
        .await
        .unwrap_or(0)
}

impl Prober {
    fn lost(&self, server: usize, cause: ConnectCause) -> bool {
        self.emit(EventKind::ProbeFailed {
            endpoint: self.target.endpoint.clone(),
            transport: Transport::WebSocket,
            duration: Duration::ZERO,
            cause,
            status: None,
        });
        if server == 0 {
            self.set_primary(false);
        }
        true
    }

    /// Holds a connection; returns true when the link was lost, false when it left a backup because
    /// the primary is back.
    pub(super) async fn hold(&self, ws: Ws, server: usize) -> bool {
        let hb = &self.config.heartbeat;
        let endpoint = self.target.endpoint.clone();
        let (sink, mut rx) = ws.split();
        let (out, mut writer) = writer(sink);
        let outbox = self.outbox.as_ref();
        let _put_back = PutBack(self.outbox.clone());
        let mut seq = 0u64;
        let mut ping = tokio::time::interval(hb.interval);
        ping.tick().await;
        let mut outstanding: Option<(u64, Instant)> = None;
        let mut missed = 0u32;
        let mut last_msg: Option<Instant> = None;
        let mut silence_reported = false;
        let silence_after = hb.interval + hb.timeout;
        // With heartbeats on, they judge the link (a pong to any later ping confirms a flush too); with
        // them off, a flush unconfirmed for as long as a dead peer takes to be found means a dead link.
        let dead_after = hb.interval + hb.timeout * hb.failure_threshold;
        let mut flight: Option<(u64, Instant)> = None;
        let every = outbox.map_or(Duration::from_secs(3600), |o| o.settings().flush_interval);
        let mut flush_tick = tokio::time::interval(every); // ticks at once: flush on (re)connect
        let batch = outbox.map_or(usize::MAX, |o| o.settings().flush_batch);
        let mut primary_check = tokio::time::interval(self.config.reconnection.max_delay);
        primary_check.tick().await;
        loop {
            let mut flush_now = false;
            tokio::select! {
                m = rx.next() => match m {
                    Some(Ok(Message::Pong(p))) => {
                        let answered = pong_seq(&p);
                        if let Some((_, sent)) = outstanding.filter(|(s, _)| answered.is_none_or(|a| a >= *s)) {
                            outstanding = None;
                            missed = 0;
                            self.emit(EventKind::PingPong { peer: Peer::Upstream, rtt: Some(sent.elapsed()) });
                        }
                        if let (Some((s, _)), Some(a), Some(o)) = (flight, answered, outbox) {
                            if a >= s {
                                flight = None;
                                flush_now = confirm(o).await >= batch;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return self.lost(server, ConnectCause::Reset),
                    Some(Ok(m)) => {
                        last_msg = Some(Instant::now());
                        silence_reported = false;
                        let reply = m.to_text().ok().and_then(|t| super::target::reply_to(&self.config.probe, t));
                        if let Some(r) = reply {
                            if out.send(vec![Message::text(r)]).is_err() { return true; }
                        }
                    }
                },
                _ = &mut writer.0 => return self.lost(server, ConnectCause::Reset),
                _ = ping.tick() => {
                    if !hb.enabled {
                        if flight.is_some_and(|(_, t)| t.elapsed() > dead_after) {
                            return self.lost(server, ConnectCause::TimedOut);
                        }
                        continue;
                    }
                    if let Some((_, sent)) = outstanding {
                        if sent.elapsed() >= hb.timeout {
                            missed += 1;
                            outstanding = None;
                            if missed >= hb.failure_threshold {
                                self.emit(EventKind::HeartbeatTimeout { peer: Peer::Upstream, missed });
                                if server == 0 { self.set_primary(false); }
                                return true;
                            }
                        }
                    }
                    if let Some(t) = last_msg.filter(|t| !silence_reported && t.elapsed() > silence_after) {
                        silence_reported = true;
                        self.emit(EventKind::MissingHeartbeat { endpoint: endpoint.clone(), silence: t.elapsed() });
                    }
                    if outstanding.is_none() {
                        seq += 1;
                        outstanding = Some((seq, Instant::now()));
                        if out.send(vec![Message::Ping(ping_payload(seq).into())]).is_err() { return true; }
                    }
                }
                _ = flush_tick.tick(), if outbox.is_some() => flush_now = true,
                _ = batch_ready(outbox) => flush_now = true,
                _ = primary_check.tick(), if server != 0 => {
                    let url = super::target::url_for(&self.target.urls[0], &self.config.probe);
                    if let super::target::Upgrade::Open(..) = super::target::upgrade(&url, &self.config.probe, self.config.limits.upstream_timeout).await {
                        let _ = out.send(vec![Message::Close(None)]);
                        drop(out);
                        let _ = tokio::time::timeout(self.config.limits.close_timeout, &mut writer.0).await;
                        return false;
                    }
                }
            }
            if !flush_now || flight.is_some() {
                continue;
            }
            if let Some(msgs) = outbox.and_then(|o| o.begin_flush()) {
                seq += 1;
                let mut frames: Vec<Message> = msgs.into_iter().map(Message::Text).collect();
                frames.push(Message::Ping(ping_payload(seq).into()));
                flight = Some((seq, Instant::now()));
                if out.send(frames).is_err() {
                    return self.lost(server, ConnectCause::Reset);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_numbers_round_trip_and_foreign_pongs_carry_none() {
        assert_eq!(pong_seq(&ping_payload(42)), Some(42));
        assert_eq!(pong_seq(b"iskra-probe"), None);
        assert_eq!(pong_seq(b"something else"), None);
        assert_eq!(pong_seq(&[0xff, 0xfe]), None);
    }
}
