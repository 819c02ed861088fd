//! The sidecar's own heartbeats on a proxied session (the seed's `heartbeat` settings): a ping to each
//! peer every `interval`, its pong consumed (never forwarded) with the round trip measured, and a peer
//! that misses `failure_threshold` beats in a row declared dead. One timer per session, firing once per
//! interval (or timeout), so 10,000 idle sessions cost a few hundred wake-ups a second at the seed's 30 s.
//!
//! Pings and pongs the peers send each other are not touched: only a pong whose payload is exactly
//! that of the ping the sidecar has outstanding to that peer is consumed (once); every other pong —
//! unsolicited, repeated, late, or merely shaped like the sidecar's — is forwarded untouched and
//! records nothing, so a peer cannot poison the RTT histogram or flood the event channel with pongs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::events::Peer;

/// Prefix of the payload of the sidecar's own pings; 8 bytes of send time (µs since session start) follow.
pub const HB_PREFIX: &[u8] = b"iskra-hb:";

/// Heartbeat settings of a session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Heartbeats {
    /// Sidecar pings are on.
    pub enabled: bool,
    /// Between pings.
    pub interval: Duration,
    /// Wait for a pong.
    pub timeout: Duration,
    /// Missed beats before a peer is dead.
    pub threshold: u32,
}

/// Pongs seen per peer (written by the pumps, read by the session's timer), and the ping each peer
/// owes an answer to.
#[derive(Debug, Default)]
pub struct Pongs {
    seen: [AtomicU64; 2],
    /// Send time (µs since session start) + 1 of the outstanding ping per peer; 0 when none.
    outstanding: [AtomicU64; 2],
}

fn slot(p: Peer) -> usize {
    match p {
        Peer::Client => 0,
        Peer::Upstream => 1,
    }
}

impl Pongs {
    /// Counts a pong from `peer`.
    pub fn record(&self, peer: Peer) {
        self.seen[slot(peer)].fetch_add(1, Relaxed);
    }

    /// A ping with `payload` (from [`ping_payload`]) is being sent to `peer`: only its exact answer
    /// will be consumed. A ping sent before it and still unanswered is no longer awaited.
    pub fn expect(&self, peer: Peer, payload: &[u8]) {
        if let Some(sent) = own_pong(payload) {
            let v = (sent.as_micros() as u64).saturating_add(1);
            self.outstanding[slot(peer)].store(v, Relaxed);
        }
    }

    /// If `payload` is exactly the answer to the ping outstanding to `peer`, takes it (so a copy of it
    /// is not consumed again), counts the pong and returns the ping's send time since session start.
    pub fn answer(&self, peer: Peer, payload: &[u8]) -> Option<Duration> {
        let sent = own_pong(payload)?;
        let v = (sent.as_micros() as u64).saturating_add(1);
        self.outstanding[slot(peer)]
            .compare_exchange(v, 0, Relaxed, Relaxed)
            .ok()?;
        self.record(peer);
        Some(sent)
    }

    /// Pongs seen from `peer` so far.
    pub fn count(&self, peer: Peer) -> u64 {
        self.seen[slot(peer)].load(Relaxed)
    }
}

/// The payload of a sidecar ping sent `since_start` into the session.
pub fn ping_payload(since_start: Duration) -> [u8; 17] {
    let mut p = [0u8; 17];
    p[..9].copy_from_slice(HB_PREFIX);
    p[9..].copy_from_slice(&(since_start.as_micros() as u64).to_be_bytes());
    p
}

/// If `payload` answers a sidecar ping, the send time (since session start) it carries.
pub fn own_pong(payload: &[u8]) -> Option<Duration> {
    if payload.len() != 17 || !payload.starts_with(HB_PREFIX) {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&payload[9..]);
    Some(Duration::from_micros(u64::from_be_bytes(b)))
}

/// What the timer should do for one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Nothing now.
    Wait,
    /// Send a ping now.
    Ping,
    /// The peer missed this many beats in a row: declare it dead.
    Dead(u32),
}

/// One peer's heartbeat state (pure: driven by the session's timer with the pong count).
#[derive(Debug, Clone)]
pub struct PeerBeat {
    next_ping: Instant,
    outstanding: Option<(Instant, u64)>,
    missed: u32,
}

impl PeerBeat {
    /// First ping one interval after `start`.
    pub fn new(start: Instant, cfg: &Heartbeats) -> Self {
        PeerBeat {
            next_ping: start + cfg.interval,
            outstanding: None,
            missed: 0,
        }
    }

    /// When the timer must look at this peer next.
    pub fn deadline(&self, cfg: &Heartbeats) -> Instant {
        match self.outstanding {
            Some((sent, _)) => sent + cfg.timeout,
            None => self.next_ping,
        }
    }

    /// Advances the state at `now`, given the pongs seen so far from this peer.
    pub fn tick(&mut self, now: Instant, pongs: u64, cfg: &Heartbeats) -> Beat {
        if let Some((sent, before)) = self.outstanding {
            if pongs > before {
                self.outstanding = None;
                self.missed = 0;
            } else if now >= sent + cfg.timeout {
                self.missed += 1;
                if self.missed >= cfg.threshold {
                    self.outstanding = None;
                    return Beat::Dead(self.missed);
                }
                // Retry at once: misses come `timeout` apart, so a dead peer is found within
                // interval + timeout × threshold (the seed's 30 s + 10 s × 3 = 60 s).
                self.outstanding = Some((now, pongs));
                return Beat::Ping;
            }
        }
        if self.outstanding.is_none() && now >= self.next_ping {
            self.outstanding = Some((now, pongs));
            while self.next_ping <= now {
                self.next_ping += cfg.interval;
            }
            return Beat::Ping;
        }
        Beat::Wait
    }

    /// Beats missed in a row so far.
    pub fn missed(&self) -> u32 {
        self.missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Heartbeats {
        Heartbeats {
            enabled: true,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            threshold: 3,
        }
    }

    #[test]
    fn payload_round_trips_and_foreign_pongs_are_not_ours() {
        let p = ping_payload(Duration::from_micros(123_456));
        assert_eq!(own_pong(&p), Some(Duration::from_micros(123_456)));
        assert_eq!(own_pong(b"iskra-hb:short"), None);
        assert_eq!(own_pong(b"hello from the client"), None);
    }

    #[test]
    fn only_the_exact_answer_to_the_outstanding_ping_is_taken_and_only_once() {
        let pongs = Pongs::default();
        let ping = ping_payload(Duration::from_micros(5_000));
        assert_eq!(
            pongs.answer(Peer::Client, &ping),
            None,
            "nothing outstanding"
        );
        pongs.expect(Peer::Client, &ping);
        let forged = ping_payload(Duration::from_micros(5_001));
        assert_eq!(pongs.answer(Peer::Client, &forged), None);
        assert_eq!(
            pongs.answer(Peer::Upstream, &ping),
            None,
            "the other peer's"
        );
        assert_eq!(
            pongs.answer(Peer::Client, &ping),
            Some(Duration::from_micros(5_000))
        );
        assert_eq!(pongs.answer(Peer::Client, &ping), None, "a replay");
        assert_eq!(
            (pongs.count(Peer::Client), pongs.count(Peer::Upstream)),
            (1, 0)
        );
    }

    #[test]
    fn a_silent_peer_is_dead_after_threshold_beats_and_an_answering_one_never() {
        let c = cfg();
        let t0 = Instant::now();
        let mut silent = PeerBeat::new(t0, &c);
        let mut alive = PeerBeat::new(t0, &c);
        let mut pongs = 0;
        let mut dead_at = None;
        for s in 0..200u64 {
            let now = t0 + Duration::from_secs(s);
            if let Beat::Dead(n) = silent.tick(now, 0, &c) {
                dead_at.get_or_insert((s, n));
            }
            if alive.tick(now, pongs, &c) == Beat::Ping {
                pongs += 1; // answered before the next tick
            }
            assert!(!matches!(alive.tick(now, pongs, &c), Beat::Dead(_)));
        }
        // First ping at 30 s; unanswered pings are retried every timeout (10 s): 40, 50; dead at 60 s
        // = interval + timeout × threshold.
        assert_eq!(dead_at, Some((60, 3)));
    }

    #[test]
    fn one_answer_resets_the_missed_count() {
        let c = cfg();
        let t0 = Instant::now();
        let mut p = PeerBeat::new(t0, &c);
        assert_eq!(p.tick(t0 + Duration::from_secs(30), 0, &c), Beat::Ping);
        assert_eq!(
            p.tick(t0 + Duration::from_secs(40), 0, &c),
            Beat::Ping,
            "a miss is retried at once"
        );
        assert_eq!(p.missed(), 1);
        assert_eq!(p.tick(t0 + Duration::from_secs(41), 1, &c), Beat::Wait);
        assert_eq!(p.missed(), 0);
        assert_eq!(
            p.tick(t0 + Duration::from_secs(60), 1, &c),
            Beat::Ping,
            "back on the interval"
        );
    }
}
