//! Frame parsing, fuzzed with proptest (bounded: `PROPTEST_CASES`, default 256 per property).
//!
//! - `src/proxy/frame.rs`: `parse_header` never panics and never reads past its input, `build_frame` →
//!   `parse_header` round-trips every length form and mask, `parse_close` never panics and accepts only
//!   valid codes and UTF-8 reasons.
//! - The relay as a whole (`support::in_process`, with a raw upstream that records bytes): any valid
//!   frame sequence, split at arbitrary read boundaries in both directions, arrives byte-identical; any
//!   random or mutated byte stream gets at most one close frame back, the upstream receives only a prefix
//!   of it (plus at most the sidecar's own close), and the sidecar never panics and keeps serving.
//!
//! Failures proptest finds are persisted in `tests/fuzz_frames.proptest-regressions` (commit it; they
//! replay first on every run). The explicit cases at the end are the kept corpus of inputs that broke, or
//! could break, the incremental parser (headers split octet by octet, control frames across reads).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

use iskra_ws_sidecar::app;
use iskra_ws_sidecar::cmd::chaos::wire;
use iskra_ws_sidecar::events::ProtocolRule;
use iskra_ws_sidecar::proxy::frame::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use support::in_process;

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Payloads around every length-encoding boundary (125/126, 65535/65536).
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (120usize..131).prop_map(|n| vec![0x5A; n]),
        1 => (65_530usize..65_542).prop_map(|n| (0..n).map(|i| i as u8).collect()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_header_never_panics_and_stays_in_bounds(buf in prop::collection::vec(any::<u8>(), 0..24)) {
        match parse_header(&buf) {
            Parsed::Header(h) => {
                prop_assert!(h.header_len <= buf.len());
                prop_assert!([2, 4, 6, 8, 10, 14].contains(&h.header_len));
                prop_assert_eq!(h.mask.is_some(), buf[1] & 0x80 != 0);
                prop_assert_eq!((h.fin, h.rsv, h.opcode), (buf[0] & 0x80 != 0, (buf[0] >> 4) & 7, buf[0] & 0xF));
                prop_assert_eq!(h.len >> 63, 0);
            }
            Parsed::Incomplete => prop_assert!(buf.len() < MAX_HEADER),
            Parsed::Invalid(rule) => prop_assert_eq!(rule, ProtocolRule::BadLength),
        }
    }

    #[test]
    fn build_then_parse_round_trips(opcode in 0u8..16, p in payload(), mask in any::<Option<[u8; 4]>>()) {
        let f = build_frame(opcode, &p, mask);
        let Parsed::Header(h) = parse_header(&f) else {
            return Err(TestCaseError::fail(format!("{:?}", parse_header(&f))));
        };
        prop_assert_eq!((h.fin, h.rsv, h.opcode, h.mask), (true, 0, opcode, mask));
        prop_assert_eq!(h.len as usize, p.len());
        prop_assert_eq!(h.header_len + p.len(), f.len());
        let minimal = match p.len() { 0..=125 => 2, 126..=65_535 => 4, _ => 10 };
        prop_assert_eq!(h.header_len, minimal + if mask.is_some() { 4 } else { 0 });
        let mut body = f[h.header_len..].to_vec();
        if let Some(m) = h.mask {
            apply_mask(&mut body, m, 0);
        }
        prop_assert_eq!(body, p);
        for cut in 0..h.header_len {
            prop_assert_eq!(parse_header(&f[..cut]), Parsed::Incomplete, "cut {}", cut);
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole(data in prop::collection::vec(any::<u8>(), 0..100), m in any::<[u8; 4]>(), at in any::<Index>()) {
        let mut whole = data.clone();
        apply_mask(&mut whole, m, 0);
        let cut = at.index(data.len() + 1);
        let mut pieces = data.clone();
        let (a, b) = pieces.split_at_mut(cut);
        apply_mask(a, m, 0);
        apply_mask(b, m, cut);
        prop_assert_eq!(&pieces, &whole);
        apply_mask(&mut pieces, m, 0);
        prop_assert_eq!(pieces, data);
    }

    #[test]
    fn parse_close_never_panics_and_accepts_only_valid_codes(p in prop::collection::vec(any::<u8>(), 0..130)) {
        match parse_close(&p) {
            Ok((code, reason)) if p.is_empty() => prop_assert_eq!((code, reason.as_str()), (1005, "")),
            Ok((code, reason)) => {
                prop_assert!(is_valid_close_code(code));
                prop_assert_eq!(reason.as_bytes(), &p[2..]);
            }
            Err(ProtocolRule::InvalidCloseCode) => {
                prop_assert!(p.len() == 1 || !is_valid_close_code(u16::from_be_bytes([p[0], p[1]])));
            }
            Err(ProtocolRule::InvalidUtf8) => prop_assert!(std::str::from_utf8(&p[2..]).is_err()),
            Err(other) => return Err(TestCaseError::fail(format!("unexpected rule {other:?}"))),
        }
    }

    #[test]
    fn close_frames_fit_125_bytes_and_round_trip(code in prop_oneof![1000u16..1004, 1007u16..1015, 3000u16..5000], reason in "\\PC{0,130}", mask in any::<Option<[u8; 4]>>()) {
        let f = close_frame(code, &reason, mask);
        let Parsed::Header(h) = parse_header(&f) else {
            return Err(TestCaseError::fail("close frame header"));
        };
        prop_assert!(h.len <= 125);
        let mut body = f[h.header_len..].to_vec();
        if let Some(m) = h.mask {
            apply_mask(&mut body, m, 0);
        }
        let (c, r) = parse_close(&body).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(c, code);
        prop_assert!(reason.starts_with(&r));
    }
}

// ---- the relay as a whole --------------------------------------------------------------------------

/// A sidecar on its own runtime (threads named so a panic in it is counted), in front of a raw upstream.
struct Fixture {
    rt: tokio::runtime::Runtime,
    sidecar: SocketAddr,
    upstreams: tokio::sync::Mutex<mpsc::UnboundedReceiver<TcpStream>>,
    _running: app::Running,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();
static SIDECAR_PANICS: AtomicUsize = AtomicUsize::new(0);
/// Relay cases run one at a time: each takes the next upstream connection from the shared channel.
static RELAY: std::sync::Mutex<()> = std::sync::Mutex::new(());
const THREADS: &str = "sidecar-under-fuzz";

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(THREADS) {
                SIDECAR_PANICS.fetch_add(1, Relaxed);
            }
            prev(info)
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREADS)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (running, sidecar) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let up = listener.local_addr().unwrap();
            tokio::spawn(raw_upstream(listener, tx));
            let (running, _) = in_process(|t| {
                t["upstream"] = format!("ws://{up}").into();
                t["probe"]["enabled"] = false.into();
                t["websocket"]["heartbeat"]["enabled"] = false.into();
                t["websocket"]["monitoring"]["log_level"] = "error".into();
                t["limits"]["close_timeout_ms"] = 500.into();
            })
            .await;
            let addr = running.addr;
            (running, addr)
        });
        Fixture {
            rt,
            sidecar,
            upstreams: tokio::sync::Mutex::new(rx),
            _running: running,
        }
    })
}

/// Answers every upgrade with 101 and hands the connection to the test.
async fn raw_upstream(listener: TcpListener, tx: mpsc::UnboundedSender<TcpStream>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
                    Ok(Ok(1)) => head.push(b[0]),
                    _ => return, // the readiness dial connects and leaves
                }
            }
            let resp =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
            if s.write_all(resp.as_bytes()).await.is_ok() {
                let _ = s.set_nodelay(true);
                let _ = tx.send(s);
            }
        });
    }
}

/// A client session through the sidecar and the upstream end of it.
async fn open(fx: &Fixture) -> Result<(TcpStream, TcpStream), String> {
    let mut rx = fx.upstreams.lock().await;
    while rx.try_recv().is_ok() {}
    let t = wire::resolve(&format!("ws://{}/fuzz", fx.sidecar)).await?;
    let (c, rest) = wire::raw_session(&t, Duration::from_secs(5)).await?;
    if !rest.is_empty() {
        return Err(format!("bytes after the 101: {rest:?}"));
    }
    let u = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .map_err(|_| "the upstream never got the upgrade".to_string())?
        .ok_or("upstream channel closed")?;
    Ok((c, u))
}

/// Writes `data` in pieces cut at `cuts`, a millisecond apart, so the sidecar reads them separately.
async fn write_cut<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    data: &[u8],
    cuts: &[usize],
) -> std::io::Result<()> {
    let mut at = 0;
    for &c in cuts.iter().chain([data.len()].iter()) {
        let c = c.min(data.len());
        if c > at {
            w.write_all(&data[at..c]).await?;
            w.flush().await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            at = c;
        }
    }
    Ok(())
}

/// Reads exactly `n` bytes, or what arrived before EOF or 5 s.
async fn read_n<R: AsyncReadExt + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut have = 0;
    while have < n {
        match tokio::time::timeout(Duration::from_secs(5), r.read(&mut out[have..])).await {
            Ok(Ok(k)) if k > 0 => have += k,
            _ => break,
        }
    }
    out.truncate(have);
    out
}

fn cut_points(idx: &[Index], len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One frame of a generated sequence.
#[derive(Debug, Clone)]
struct F {
    opcode: u8,
    fin: bool,
    payload: Vec<u8>,
    mask: [u8; 4],
}

/// Valid messages: text or binary, in 1–3 fragments, with pings and pongs between fragments.
fn sequence() -> impl Strategy<Value = Vec<F>> {
    let control = (
        prop_oneof![Just(0x9u8), Just(0xAu8)],
        prop::collection::vec(any::<u8>(), 0..=125),
        any::<[u8; 4]>(),
    );
    let message = (
        any::<bool>(),
        prop::collection::vec(
            (payload(), any::<[u8; 4]>(), prop::option::of(control)),
            1..4,
        ),
    );
    prop::collection::vec(message, 1..5).prop_map(|msgs| {
        let mut out = Vec::new();
        for (text, frags) in msgs {
            let last = frags.len() - 1;
            for (i, (mut p, mask, ctl)) in frags.into_iter().enumerate() {
                if text {
                    p.iter_mut().for_each(|b| *b = b'a' + *b % 26);
                }
                let opcode = match (i, text) {
                    (0, true) => 1,
                    (0, false) => 2,
                    _ => 0,
                };
                out.push(F {
                    opcode,
                    fin: i == last,
                    payload: p,
                    mask,
                });
                if let Some((op, payload, mask)) = ctl {
                    out.push(F {
                        opcode: op,
                        fin: true,
                        payload,
                        mask,
                    });
                }
            }
        }
        out
    })
}

fn encode(seq: &[F], masked: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in seq {
        let mut b = build_frame(f.opcode, &f.payload, masked.then_some(f.mask));
        if !f.fin {
            b[0] &= 0x7F;
        }
        out.extend_from_slice(&b);
    }
    out
}

/// Both directions at once, cut at arbitrary points; each side must receive exactly what was sent, and
/// then the client's close must be the very next thing the upstream sees.
async fn relay_round_trip(
    up: Vec<u8>,
    up_cuts: Vec<usize>,
    down: Vec<u8>,
    down_cuts: Vec<usize>,
) -> Result<(), String> {
    let fx = fixture();
    let (c, u) = open(fx).await?;
    let (mut cr, mut cw) = c.into_split();
    let (mut ur, mut uw) = u.into_split();
    let (w1, got_up, w2, got_down) = tokio::join!(
        write_cut(&mut cw, &up, &up_cuts),
        read_n(&mut ur, up.len()),
        write_cut(&mut uw, &down, &down_cuts),
        read_n(&mut cr, down.len()),
    );
    w1.and(w2).map_err(|e| format!("write: {e}"))?;
    if got_up != up {
        return Err(format!(
            "client→upstream: {} bytes sent, {} arrived, first difference at {:?}",
            up.len(),
            got_up.len(),
            first_diff(&up, &got_up)
        ));
    }
    if got_down != down {
        return Err(format!(
            "upstream→client: {} bytes sent, {} arrived, first difference at {:?}",
            down.len(),
            got_down.len(),
            first_diff(&down, &got_down)
        ));
    }
    let close = close_frame(1000, "fuzz done", Some([1, 2, 3, 4]));
    cw.write_all(&close).await.map_err(|e| e.to_string())?;
    let next = read_n(&mut ur, close.len()).await;
    if next != close {
        return Err(format!(
            "after the sequence the upstream got {next:?} instead of the client's close"
        ));
    }
    check_panics()
}

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn check_panics() -> Result<(), String> {
    match SIDECAR_PANICS.load(Relaxed) {
        0 => Ok(()),
        n => Err(format!("the sidecar panicked {n} times")),
    }
}

/// Exactly one complete close frame (and nothing else) in `b`, masked as told: its code.
fn one_close(b: &[u8], masked: bool) -> Option<u16> {
    let Parsed::Header(h) = parse_header(b) else {
        return None;
    };
    if h.opcode != 8
        || !h.fin
        || h.mask.is_some() != masked
        || h.header_len + h.len as usize != b.len()
    {
        return None;
    }
    let mut p = b[h.header_len..].to_vec();
    if let Some(m) = h.mask {
        apply_mask(&mut p, m, 0);
    }
    parse_close(&p).ok().map(|(c, _)| c)
}

/// Reads until EOF, answering the first complete close frame (a sequential scan) like a server would.
async fn upstream_until_eof(mut u: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let (mut pos, mut answered) = (0usize, false);
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), u.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&tmp[..n]),
            _ => return got,
        }
        while !answered {
            let Parsed::Header(h) = parse_header(&got[pos..]) else {
                break;
            };
            let total = h.header_len + h.len as usize;
            if got.len() - pos < total {
                break;
            }
            if h.opcode == 8 {
                answered = true;
                let _ = u
                    .write_all(&build_frame(8, &1000u16.to_be_bytes(), None))
                    .await;
                let _ = u.shutdown().await;
            }
            pos += total;
        }
    }
}

/// Sends arbitrary bytes then FIN. The upstream must see a prefix of them, optionally followed by the
/// sidecar's own close; the client at most one close; the sidecar must not panic and keep serving.
async fn relay_garbage(input: Vec<u8>, cuts: Vec<usize>) -> Result<(), String> {
    let fx = fixture();
    let (c, u) = open(fx).await?;
    let (mut cr, mut cw) = c.into_split();
    let upstream = tokio::spawn(upstream_until_eof(u));
    let writer = async {
        let _ = write_cut(&mut cw, &input, &cuts).await;
        let _ = cw.shutdown().await;
    };
    let reader = async {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), cr.read_to_end(&mut got)).await;
        got
    };
    let ((), to_client) = tokio::join!(writer, reader);
    let to_upstream = upstream.await.map_err(|e| e.to_string())?;
    let common = to_upstream
        .iter()
        .zip(&input)
        .take_while(|(a, b)| a == b)
        .count();
    let prefix_then_close = (0..=common).rev().any(|k| {
        let rest = &to_upstream[k..];
        rest.is_empty()
            || one_close(rest, true).is_some_and(|c| [1001, 1002, 1007, 1009].contains(&c))
    });
    if !prefix_then_close {
        return Err(format!("the upstream got {} bytes that are not a prefix of the {} sent (+ one close): diverge at {common}", to_upstream.len(), input.len()));
    }
    if !to_client.is_empty() && one_close(&to_client, false).is_none() {
        return Err(format!(
            "the client got {to_client:?}, not at most one close frame"
        ));
    }
    check_panics()
}

/// A valid sequence with a few bytes flipped, cut short somewhere.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        sequence(),
        prop::collection::vec((any::<Index>(), 1u8..=255), 0..4),
        any::<Index>(),
    )
        .prop_map(|(seq, flips, end)| {
            let mut b = encode(&seq, true);
            for (i, x) in flips {
                let at = i.index(b.len());
                b[at] ^= x;
            }
            let keep = end.index(b.len() + 1).max(1);
            b.truncate(keep);
            b
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_frames_cross_the_relay_byte_identical_however_reads_split_them(
        up in sequence(), down in sequence(),
        up_cuts in prop::collection::vec(any::<Index>(), 0..8), down_cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let _one = RELAY.lock().unwrap_or_else(|e| e.into_inner());
        let (up, down) = (encode(&up, true), encode(&down, false));
        let (uc, dc) = (cut_points(&up_cuts, up.len()), cut_points(&down_cuts, down.len()));
        fixture().rt.block_on(relay_round_trip(up, uc, down, dc)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn any_byte_stream_gets_at_most_one_close_and_only_a_prefix_is_forwarded(
        input in prop_oneof![prop::collection::vec(any::<u8>(), 1..300), mutated()],
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let _one = RELAY.lock().unwrap_or_else(|e| e.into_inner());
        let cuts = cut_points(&cuts, input.len());
        fixture().rt.block_on(relay_garbage(input, cuts)).map_err(TestCaseError::fail)?;
    }
}

// ---- the kept corpus: explicit regression inputs ---------------------------------------------------

fn every_octet(n: usize) -> Vec<usize> {
    (1..n).collect()
}

fn run(f: impl std::future::Future<Output = Result<(), String>>) {
    let _one = RELAY.lock().unwrap_or_else(|e| e.into_inner());
    fixture().rt.block_on(f).unwrap();
}

#[test]
fn regression_headers_split_octet_by_octet_lose_no_bytes() {
    // Each of the three length forms, masked, with the 14-byte header arriving one octet per read.
    for len in [5usize, 300, 70_000] {
        let p: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let up = build_frame(0x2, &p, Some([9, 8, 7, 6]));
        let down = build_frame(0x2, &p, None);
        run(relay_round_trip(up, every_octet(14), down, every_octet(10)));
    }
}

#[test]
fn regression_control_frames_split_across_reads_and_between_fragments() {
    let m = Some([1, 1, 2, 3]);
    let mut first = build_frame(0x1, b"frag-", m);
    first[0] &= 0x7F;
    let ping = build_frame(0x9, &[b'p'; 125], m);
    let last = build_frame(0x0, b"mented", m);
    let up = [first, ping.clone(), last].concat();
    // Every cut inside the ping (the header and its 125 bytes wait in the pending buffer).
    let start = up.len() - ping.len() - 12;
    let cuts: Vec<usize> = (start..start + ping.len()).step_by(7).collect();
    run(relay_round_trip(
        up,
        cuts,
        build_frame(0xA, b"", None),
        vec![1],
    ));
}

#[test]
fn regression_a_header_completed_in_the_read_that_also_holds_the_next_frame() {
    let m = Some([4, 3, 2, 1]);
    let a = build_frame(0x2, &[1; 200], m);
    let b = build_frame(0x9, b"x", m);
    let c = build_frame(0x2, &[2; 3], m);
    let up = [a, b, c].concat();
    // Cut 3 bytes into the 8-byte header of the first frame, then a read with its rest and everything after.
    run(relay_round_trip(up, vec![3], Vec::new(), Vec::new()));
}

#[test]
fn regression_violations_split_octet_by_octet_still_close_with_their_code() {
    let mut bad_length = vec![0x82, 0x80 | 127];
    bad_length.extend_from_slice(&(1u64 << 63).to_be_bytes());
    bad_length.extend_from_slice(&[1, 2, 3, 4]);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (bad_length, 1002),
        (build_frame(0x3, b"x", Some([5, 5, 5, 5])), 1002),
        (build_frame(0x8, &[3], Some([5, 5, 5, 5])), 1002),
        (
            build_frame(0x8, &[0x03, 0xE8, 0xFF], Some([5, 5, 5, 5])),
            1007,
        ),
        (build_frame(0x2, b"x", None), 1002),
    ];
    for (bytes, code) in cases {
        let cuts = every_octet(bytes.len());
        run(async move {
            let fx = fixture();
            let (mut c, _u) = open(fx).await?;
            write_cut(&mut c, &bytes, &cuts)
                .await
                .map_err(|e| e.to_string())?;
            let _ = c.shutdown().await;
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got)).await;
            match one_close(&got, false) {
                Some(c) if c == code => check_panics(),
                other => Err(format!(
                    "{bytes:?}: expected close {code}, got {other:?} from {got:?}"
                )),
            }
        });
    }
}
