//! The first client messages of a session (`resume.replay_messages`, bounded by `resume.replay_bytes`),
//! kept as the client sent them (frames, masks and all) to be re-sent to a new upstream connection
//! before the held messages — a subscription, say, that the restarted dashboard must see again.
//!
//! The client → upstream pump tees every byte it forwards ([`Recorder::tee`]); the recorder walks frame
//! headers itself, keeps data frames, skips control frames, and stops after the N-th message (one atomic
//! load per write from then on).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

use crate::proxy::frame::{self, Parsed, MAX_HEADER};

/// The recorder of one session (inactive unless [`Recorder::start`] was called); it lives in the
/// session's resume plan, so a session without resume has none, and its state is allocated only when
/// it records (`replay_messages` > 0).
#[derive(Debug, Default)]
pub struct Recorder {
    active: AtomicBool,
    state: OnceLock<Box<Mutex<State>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Messages still wanted.
    want: u32,
    /// Byte budget.
    budget: u64,
    /// Data frames kept so far.
    frames: Vec<u8>,
    /// A header cut by a write boundary.
    head: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    left: u64,
    /// Whether the current frame's bytes are kept (a data frame) or skipped (a control frame).
    keep: bool,
    /// Whether the current data frame ends its message.
    fin: bool,
    /// The messages passed the budget: nothing can be replayed.
    overflowed: bool,
}

impl State {
    fn message_done(&mut self) {
        self.want = self.want.saturating_sub(1);
    }

    /// Walks `data`; returns false once recording is over.
    fn walk(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() && self.want > 0 {
            if self.left > 0 {
                let n = self.left.min(data.len() as u64) as usize;
                if self.keep {
                    self.frames.extend_from_slice(&data[..n]);
                }
                self.left -= n as u64;
                data = &data[n..];
                if self.left == 0 && self.keep && self.fin {
                    self.message_done();
                }
                continue;
            }
            let old = self.head.len();
            let k = (MAX_HEADER - old).min(data.len());
            self.head.extend_from_slice(&data[..k]);
            let h = match frame::parse_header(&self.head) {
                Parsed::Incomplete => return true,
                Parsed::Invalid(_) => return false,
                Parsed::Header(h) => h,
            };
            data = &data[h.header_len - old..];
            self.keep = !h.is_control();
            if self.keep {
                self.frames.extend_from_slice(&self.head[..h.header_len]);
                self.fin = h.fin;
            }
            self.head.clear();
            self.left = h.len;
            if h.len == 0 && self.keep && h.fin {
                self.message_done();
            }
        }
        if self.frames.len() as u64 > self.budget {
            self.overflowed = true;
            self.frames = Vec::new();
            return false;
        }
        self.want > 0
    }
}

impl Recorder {
    /// Starts recording the first `messages` data messages, up to `budget` bytes.
    pub fn start(&self, messages: u32, budget: u64) {
        if messages == 0 {
            return;
        }
        let state = State {
            want: messages,
            budget,
            ..State::default()
        };
        if self.state.set(Box::new(Mutex::new(state))).is_ok() {
            self.active.store(true, Relaxed);
        }
    }

    /// Sees bytes forwarded client → upstream, in order.
    pub fn tee(&self, data: &[u8]) {
        if !self.active.load(Relaxed) {
            return;
        }
        if let Some(Ok(mut s)) = self.state.get().map(|m| m.lock()) {
            if !s.walk(data) {
                self.active.store(false, Relaxed);
            }
        }
    }

    /// The recorded frames (complete messages when the client is at a message boundary); `None` when
    /// they passed the budget.
    pub fn replay(&self) -> Option<Vec<u8>> {
        let Some(m) = self.state.get() else {
            return Some(Vec::new());
        };
        let s = m.lock().ok()?;
        (!s.overflowed).then(|| s.frames.clone())
    }

    /// Whether the messages passed the budget.
    pub fn overflowed(&self) -> bool {
        let s = self.state.get().map(|m| m.lock());
        matches!(s, Some(Ok(s)) if s.overflowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::frame::build_frame;

    #[test]
    fn keeps_the_first_n_messages_byte_for_byte_across_any_cut_and_skips_control_frames() {
        let m = Some([1, 2, 3, 4]);
        let mut first = build_frame(0x1, b"subscribe:", m);
        first[0] &= 0x7F; // FIN off: a fragmented message
        let second = build_frame(0x0, b"pulse", m);
        let ping = build_frame(0x9, b"p", m);
        let third = build_frame(0x2, &[9u8; 300], m);
        let fourth = build_frame(0x1, b"not kept", m);
        let stream = [&first[..], &ping, &second, &third, &fourth].concat();
        let want = [&first[..], &second, &third].concat();
        for step in [1, 2, 3, 7, 13, 100, 1000] {
            let r = Recorder::default();
            r.start(2, 1 << 20);
            for piece in stream.chunks(step) {
                r.tee(piece);
            }
            assert_eq!(r.replay().unwrap(), want, "step {step}");
            assert!(!r.active.load(Relaxed));
        }
    }

    #[test]
    fn messages_over_the_budget_are_not_replayed() {
        let r = Recorder::default();
        r.start(3, 100);
        r.tee(&build_frame(0x2, &[0u8; 200], Some([0; 4])));
        assert!(r.overflowed());
        assert_eq!(r.replay(), None);
        let off = Recorder::default();
        off.tee(&build_frame(0x1, b"x", Some([0; 4])));
        assert_eq!(off.replay(), Some(vec![]));
    }
}
