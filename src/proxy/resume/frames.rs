//! The client's side of a hold: its bytes read and walked frame by frame — data frames kept whole, in
//! order and as received (masks and all), pings answered, the sidecar's own pongs counted, a close, a
//! broken rule or a passed byte budget reported to [`super::hold`].

use std::time::Instant;

use tokio::net::TcpStream;

use crate::events::{EventKind, Peer, ProtocolRule};
use crate::proxy::frame::{self, Parsed};
use crate::proxy::pump::{check_header, Shared};
use crate::proxy::SessionCtx;

/// The session's counters and start time, for pongs read during the hold.
pub type Clock<'a> = (&'a Shared, Instant);

/// Why the client side ended the hold.
pub enum Stop {
    /// The client closed its TCP connection or the read failed.
    Gone,
    /// The client sent a close frame.
    Closed(u16, String),
    /// The client broke an RFC 6455 rule.
    Violation(ProtocolRule),
    /// More than the byte budget arrived.
    Full,
}

/// The client's bytes during the hold: whole data frames held in order, the rest waiting for more.
#[derive(Default)]
pub struct ClientFrames {
    /// Bytes read and not yet walked (the start of a frame).
    pub buf: Vec<u8>,
    /// Whole data frames, as received.
    pub held: Vec<u8>,
    /// Frames to write to the client (pongs to its pings).
    pub replies: Vec<u8>,
    /// Inside a fragmented message.
    pub in_message: bool,
    /// Its size so far.
    pub message_size: u64,
    /// Data messages held.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

impl ClientFrames {
    /// Reads what the client sent (until its socket would block, or the budget is passed).
    pub fn read(
        &mut self,
        client: &TcpStream,
        at: Clock<'_>,
        ctx: &SessionCtx,
        budget: u64,
    ) -> Result<(), Stop> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match client.try_read(&mut chunk) {
                Ok(0) => return Err(Stop::Gone),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return Err(Stop::Gone),
            }
            if (self.held.len() + self.buf.len()) as u64 > budget {
                break;
            }
        }
        self.walk(at, ctx)?;
        if (self.held.len() + self.buf.len()) as u64 > budget {
            return Err(Stop::Full);
        }
        Ok(())
    }

    /// Takes every whole frame out of `buf`.
    pub fn walk(&mut self, (shared, started): Clock<'_>, ctx: &SessionCtx) -> Result<(), Stop> {
        let mut at = 0;
        while let Parsed::Header(h) = frame::parse_header(&self.buf[at..]) {
            check_header(ctx, true, (self.in_message, self.message_size), &h)
                .map_err(Stop::Violation)?;
            let total = h.header_len + h.len as usize;
            if self.buf.len() - at < total {
                break;
            }
            let f = &self.buf[at..at + total];
            if h.is_control() {
                let mut payload = f[h.header_len..].to_vec();
                frame::apply_mask(&mut payload, h.mask.unwrap_or_default(), 0);
                match h.opcode {
                    0x8 => {
                        let (code, reason) =
                            frame::parse_close(&payload).map_err(Stop::Violation)?;
                        return Err(Stop::Closed(code, reason));
                    }
                    0x9 => self.replies.extend(frame::build_frame(0xA, &payload, None)),
                    _ => {
                        // Only the answer to the sidecar's outstanding ping counts.
                        if let Some(sent) = shared.pongs.answer(Peer::Client, &payload) {
                            let rtt = Some(started.elapsed().saturating_sub(sent));
                            let kind = EventKind::PingPong {
                                peer: Peer::Client,
                                rtt,
                            };
                            ctx.sink.emit(Some(&ctx.info), kind);
                        }
                        // Other pongs answered the old upstream's pings: nobody waits for them.
                    }
                }
            } else {
                self.held.extend_from_slice(f);
                self.message_size = if h.opcode == 0 {
                    self.message_size + h.len
                } else {
                    h.len
                };
                self.in_message = !h.fin;
                self.bytes += h.len;
                if h.fin {
                    self.messages += 1;
                }
            }
            at += total;
        }
        if let Parsed::Invalid(rule) = frame::parse_header(&self.buf[at..]) {
            return Err(Stop::Violation(rule));
        }
        self.buf.drain(..at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventSink;
    use crate::proxy::frame::build_frame;
    use crate::proxy::heartbeat::ping_payload;
    use crate::proxy::pump::tests::ctx;

    #[test]
    fn data_frames_are_held_whole_and_in_order_pings_answered_at_any_cut() {
        let m = Some([9, 8, 7, 6]);
        let mut first = build_frame(0x1, b"part-", m);
        first[0] &= 0x7F;
        let rest = build_frame(0x0, b"two", m);
        let ping = build_frame(0x9, b"are you there", m);
        let payload = ping_payload(std::time::Duration::from_millis(3));
        let own_pong = build_frame(0xA, &payload, m);
        let big = build_frame(0x2, &[5u8; 70_000], m);
        let stream = [&first[..], &ping, &rest, &own_pong, &big].concat();
        let held = [&first[..], &rest, &big].concat();
        for step in [1usize, 7, 13, 1000, 1 << 20] {
            let (sink, _rx) = EventSink::channel(64);
            let ctx = ctx(sink);
            let shared = Shared::default();
            shared.pongs.expect(Peer::Client, &payload);
            let mut f = ClientFrames::default();
            for piece in stream.chunks(step) {
                f.buf.extend_from_slice(piece);
                assert!(
                    f.walk((&shared, Instant::now()), &ctx).is_ok(),
                    "step {step}"
                );
            }
            assert_eq!(f.held, held, "step {step}");
            assert!(f.buf.is_empty() && !f.in_message, "step {step}");
            assert_eq!((f.messages, f.bytes), (2, 5 + 3 + 70_000), "step {step}");
            assert_eq!(f.replies, build_frame(0xA, b"are you there", None));
            assert_eq!(shared.pongs.count(Peer::Client), 1);
        }
    }

    #[test]
    fn a_close_or_a_broken_rule_ends_the_hold() {
        let (sink, _rx) = EventSink::channel(64);
        let ctx = ctx(sink);
        let shared = Shared::default();
        let clock = (&shared, Instant::now());
        let holding = |buf| ClientFrames {
            buf,
            ..Default::default()
        };
        let mut f = holding(frame::close_frame(4001, "bye", Some([1, 2, 3, 4])));
        assert!(matches!(f.walk(clock, &ctx), Err(Stop::Closed(4001, r)) if r == "bye"));
        let mut f = holding(build_frame(0x1, b"unmasked", None));
        let r = f.walk(clock, &ctx);
        assert!(matches!(
            r,
            Err(Stop::Violation(ProtocolRule::UnmaskedClientFrame))
        ));
    }
}
