//! The RFC 6455 rules a frame header must keep before anything of its frame is forwarded (§5.1 masking,
//! §5.2 reserved opcodes and bits, §5.4 fragmentation, §5.5 control frames) and the configured frame and
//! message limits; and which close codes announce a restart (held instead of forwarded when resume is
//! on). Pure: the pump (`proxy::pump`) walks the bytes and asks here.

use super::frame::FrameHeader;
use super::SessionCtx;
use crate::events::{OpcodeKind, ProtocolRule};

/// RFC 6455 checks on a header from the client (`from_client`) or the upstream, given whether a
/// fragmented message is in progress and its size so far.
pub fn check_header(
    ctx: &SessionCtx,
    from_client: bool,
    (in_message, message_size): (bool, u64),
    h: &FrameHeader,
) -> Result<(), ProtocolRule> {
    let kind = h.kind()?;
    match (from_client, h.mask.is_some()) {
        (true, false) => return Err(ProtocolRule::UnmaskedClientFrame),
        (false, true) => return Err(ProtocolRule::MaskedServerFrame),
        _ => {}
    }
    if !ctx.any_extension {
        let rsv1_ok =
            ctx.deflate && matches!(kind, OpcodeKind::Text | OpcodeKind::Binary) && h.rsv == 0b100;
        if h.rsv != 0 && !rsv1_ok {
            return Err(ProtocolRule::ReservedBits);
        }
    }
    if h.is_control() {
        if !h.fin {
            return Err(ProtocolRule::FragmentedControlFrame);
        }
        if h.len > 125 {
            return Err(ProtocolRule::ControlFrameTooLong);
        }
        return Ok(());
    }
    match (kind, in_message) {
        (OpcodeKind::Continuation, false) => return Err(ProtocolRule::BadContinuation),
        (OpcodeKind::Text | OpcodeKind::Binary, true) => return Err(ProtocolRule::BadContinuation),
        _ => {}
    }
    if h.len > ctx.max_frame_size {
        return Err(ProtocolRule::FrameTooLarge);
    }
    let so_far = if kind == OpcodeKind::Continuation {
        message_size
    } else {
        0
    };
    if so_far + h.len > ctx.max_message_size {
        return Err(ProtocolRule::MessageTooLarge);
    }
    Ok(())
}

/// Whether an upstream close code announces a restart (held instead of forwarded when resume is on).
pub fn restart_code(code: u16) -> bool {
    matches!(code, 1001 | 1012)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventSink;
    use crate::proxy::frame::{build_frame, parse_header, Parsed};
    use ProtocolRule::*;

    fn header(frame: &[u8]) -> FrameHeader {
        match parse_header(frame) {
            Parsed::Header(h) => h,
            other => panic!("not a header: {other:?}"),
        }
    }

    #[test]
    fn each_rule_is_checked_on_the_header_alone() {
        let ctx = crate::proxy::pump::tests::ctx(EventSink::disabled());
        let m = Some([1, 2, 3, 4]);
        let check =
            |from_client, state, f: Vec<u8>| check_header(&ctx, from_client, state, &header(&f));
        assert_eq!(check(true, (false, 0), build_frame(0x1, b"x", m)), Ok(()));
        assert_eq!(
            check(false, (false, 0), build_frame(0x2, b"x", None)),
            Ok(())
        );
        let unmasked = build_frame(0x1, b"x", None);
        assert_eq!(check(true, (false, 0), unmasked), Err(UnmaskedClientFrame));
        let masked = build_frame(0x1, b"x", m);
        assert_eq!(check(false, (false, 0), masked), Err(MaskedServerFrame));
        let mut rsv1 = build_frame(0x1, b"x", m);
        rsv1[0] |= 0x40; // no extension negotiated
        assert_eq!(check(true, (false, 0), rsv1), Err(ReservedBits));
        let mut fragmented_ping = build_frame(0x9, b"", m);
        fragmented_ping[0] &= 0x7F;
        assert_eq!(
            check(true, (false, 0), fragmented_ping),
            Err(FragmentedControlFrame)
        );
        let continuation = build_frame(0x0, b"x", m);
        assert_eq!(check(true, (false, 0), continuation), Err(BadContinuation));
        let new_message = build_frame(0x1, b"x", m);
        assert_eq!(check(true, (true, 1), new_message), Err(BadContinuation));
        let over = build_frame(0x0, b"x", m);
        let full = (true, ctx.max_message_size);
        assert_eq!(check(true, full, over), Err(MessageTooLarge));
    }
}
