//! The WebSocket load generator. Every mode prints one JSON object on stdout.
//!
//! ```text
//! bench-load throughput --url ws://127.0.0.1:P/bench [--conns 50 --window 16 --size 64 --warmup 1 --duration 3]
//! bench-load latency    --url … [--rate 4000 --conns 10 --size 64 --warmup 1 --duration 4]
//! bench-load churn      --url … [--workers 8 --size 64 --warmup 0.5 --duration 3]
//! bench-load idle       --url … --pid PID [--conns 5000 --concurrency 32 --settle 1]
//! bench-load wait       --url … [--timeout 15]      (until a WebSocket echo works through the target)
//! bench-load ports      [--count 8]                  (free 127.0.0.1 ports, one a line)
//! ```
//! Every loop is bounded in count and time; the generator stops by itself.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iskra_ws_bench::{
    connect_ws, connect_ws_blocking, frame, parse_header, parse_url, rss_tree_kb, Args,
    FrameCounter, MASK,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let args = Args::parse(2);
    let out = match mode.as_str() {
        "throughput" => rt(&args).block_on(throughput(&args)),
        "churn" => rt(&args).block_on(churn(&args)),
        "idle" => rt(&args).block_on(idle(&args)),
        "wait" => rt(&args).block_on(wait(&args)),
        "latency" => latency(&args),
        "ports" => {
            let n: usize = args.num("count", 8);
            let ls: Vec<_> = (0..n)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
                .collect();
            for l in &ls {
                println!("{}", l.local_addr().expect("addr").port());
            }
            return;
        }
        _ => {
            eprintln!(
                "usage: bench-load throughput|latency|churn|idle|wait|ports [--key value ...]"
            );
            std::process::exit(64);
        }
    };
    let ok = out.get("error").is_none();
    println!("{out}");
    if !ok {
        std::process::exit(1);
    }
}

fn rt(args: &Args) -> tokio::runtime::Runtime {
    let threads: usize = args.num("threads", 1);
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime")
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Closed loop with a window: each connection keeps `window` messages in flight and sends one more for
/// every echo; messages/s counted over `duration` after `warmup`.
async fn throughput(args: &Args) -> Value {
    let (addr, path) = parse_url(&args.str("url", "ws://127.0.0.1:9001/bench"));
    let conns: usize = args.num("conns", 50);
    let window: usize = args.num("window", 16);
    let size: usize = args.num("size", 64);
    let warmup = args.secs("warmup", 1.0);
    let duration = args.secs("duration", 3.0);
    let received = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let f = frame(0x82, &payload(size), Some(MASK));
    let batch: Arc<Vec<u8>> = Arc::new(f.repeat(window));
    let flen = f.len();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (received, errors, stop, batch) = (
            received.clone(),
            errors.clone(),
            stop.clone(),
            batch.clone(),
        );
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let r: io::Result<()> = async {
                let (mut s, pre) = connect_ws(addr, &path).await?;
                let mut counter = FrameCounter::default();
                let mut owed = counter.feed(&pre).messages as usize;
                s.write_all(&batch).await?;
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Relaxed) {
                    if owed > 0 {
                        let k = owed.min(window);
                        s.write_all(&batch[..k * flen]).await?;
                        owed -= k;
                    }
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    let seen = counter.feed(&buf[..n]);
                    received.fetch_add(seen.messages, Relaxed);
                    owed += seen.messages as usize;
                }
                Ok(())
            }
            .await;
            if r.is_err() && !stop.load(Relaxed) {
                errors.fetch_add(1, Relaxed);
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    let a = received.load(Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    let b = received.load(Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    for t in &tasks {
        t.abort();
    }
    let total = received.load(Relaxed);
    let rate = (b - a) as f64 / secs;
    let mut v = json!({
        "mode": "throughput", "conns": conns, "window": window, "size": size,
        "msgs_per_s": rate.round(), "mib_per_s": rate * size as f64 / 1048576.0,
        "messages": b - a, "seconds": secs, "errors": errors.load(Relaxed),
        "total_messages": total,
    });
    if b == a {
        v["error"] = json!("no messages echoed");
    }
    v
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Open loop: one sender thread paces `rate` messages/s round-robin over `conns` connections, each
/// message carrying its send time; one reader thread per connection records round trips.
fn latency(args: &Args) -> Value {
    let (addr, path) = parse_url(&args.str("url", "ws://127.0.0.1:9001/bench"));
    let rate: f64 = args.num("rate", 4000.0);
    let conns: usize = args.num("conns", 10);
    let size: usize = args.num::<usize>("size", 64).max(16);
    let warmup = args.secs("warmup", 1.0);
    let duration = args.secs("duration", 4.0);
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    let measure_from = (warmup.as_nanos()) as u64;
    let measure_to = (warmup + duration).as_nanos() as u64;
    for _ in 0..conns {
        let (s, pre) = match connect_ws_blocking(addr, &path) {
            Ok(x) => x,
            Err(e) => return json!({"mode": "latency", "error": e.to_string()}),
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        writers.push(s.try_clone().expect("clone"));
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut s = s;
            let mut buf = pre;
            let mut chunk = vec![0u8; 16 * 1024];
            let mut samples: Vec<u64> = Vec::with_capacity(1 << 16);
            let mut got = 0u64;
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                // Parse every whole frame in `buf`.
                let mut pos = 0;
                while let Some(h) = parse_header(&buf[pos..]) {
                    if buf.len() - pos < h.header_len + h.len {
                        break;
                    }
                    let p = &buf[pos + h.header_len..pos + h.header_len + h.len];
                    if h.opcode() == 0x2 && p.len() >= 8 {
                        let now = base.elapsed().as_nanos() as u64;
                        let mut t = [0u8; 8];
                        t.copy_from_slice(&p[..8]);
                        let sent = u64::from_le_bytes(t);
                        if sent >= measure_from && sent < measure_to {
                            samples.push(now.saturating_sub(sent));
                        }
                        got += 1;
                    }
                    pos += h.header_len + h.len;
                }
                buf.drain(..pos);
                if stop.load(Relaxed) || Instant::now() > deadline {
                    break;
                }
                match s.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            (samples, got)
        }));
    }
    // Sender: absolute schedule, so a late wake-up is caught up rather than lowering the rate.
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = ((warmup + duration).as_secs_f64() * rate) as u64;
    let mut body = payload(size);
    let mut msg = Vec::with_capacity(size + 14);
    let mut sent = 0u64;
    let mut measured_sent = 0u64;
    let mut write_errors = 0u64;
    let start = Instant::now();
    for k in 0..total {
        let target = start + interval * k as u32;
        let now = Instant::now();
        if target > now {
            std::thread::sleep(target - now);
        }
        let ts = base.elapsed().as_nanos() as u64;
        body[..8].copy_from_slice(&ts.to_le_bytes());
        msg.clear();
        iskra_ws_bench::push_frame(&mut msg, 0x82, &body, Some(MASK));
        if writers[(k as usize) % conns].write_all(&msg).is_err() {
            write_errors += 1;
        } else {
            sent += 1;
            if ts >= measure_from && ts < measure_to {
                measured_sent += 1;
            }
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    // Let the last echoes arrive, then stop the readers.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Relaxed);
    let mut all = Vec::new();
    let mut got = 0;
    for r in readers {
        let (s, g) = r.join().unwrap_or_default();
        all.extend(s);
        got += g;
    }
    all.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let mean = if all.is_empty() {
        0.0
    } else {
        all.iter().sum::<u64>() as f64 / all.len() as f64 / 1000.0
    };
    let mut v = json!({
        "mode": "latency", "rate": rate, "conns": conns, "size": size,
        "achieved_rate": sent as f64 / send_secs,
        "samples": all.len(), "measured_sent": measured_sent, "sent": sent, "received": got,
        "write_errors": write_errors,
        "p50_us": us(percentile(&all, 50.0)), "p90_us": us(percentile(&all, 90.0)),
        "p99_us": us(percentile(&all, 99.0)), "p999_us": us(percentile(&all, 99.9)),
        "max_us": us(all.last().copied().unwrap_or(0)), "mean_us": mean,
    });
    if all.is_empty() {
        v["error"] = json!("no samples");
    }
    v
}

/// One connect → handshake → one message → close → EOF cycle; returns how long the connect and the
/// handshake took (until the 101's head was read).
async fn cycle(addr: SocketAddr, path: &str, msg: &[u8], close: &[u8]) -> io::Result<Duration> {
    let t = Instant::now();
    let (mut s, pre) = connect_ws(addr, path).await?;
    let connected = t.elapsed();
    let mut counter = FrameCounter::default();
    let mut seen = counter.feed(&pre);
    s.write_all(msg).await?;
    let mut buf = [0u8; 4096];
    let mut closing = false;
    loop {
        if seen.messages > 0 && !closing {
            s.write_all(close).await?;
            closing = true;
        }
        if seen.close {
            break;
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let s2 = counter.feed(&buf[..n]);
        seen.messages += s2.messages;
        seen.close |= s2.close;
    }
    // The server closes TCP first; wait for its FIN.
    while s.read(&mut buf).await? > 0 {}
    Ok(connected)
}

/// `workers` loops of [`cycle`]; completed cycles/s over `duration` after `warmup`.
async fn churn(args: &Args) -> Value {
    let (addr, path) = parse_url(&args.str("url", "ws://127.0.0.1:9001/bench"));
    let workers: usize = args.num("workers", 8);
    let size: usize = args.num("size", 64);
    let warmup = args.secs("warmup", 0.5);
    let duration = args.secs("duration", 3.0);
    let msg = Arc::new(frame(0x82, &payload(size), Some(MASK)));
    let close = Arc::new(frame(0x88, &1000u16.to_be_bytes(), Some(MASK)));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Per worker: (cycle, connect) durations in ns, measured after the warm-up.
    let mut cycle_ns: Vec<tokio::task::JoinHandle<(Vec<u64>, Vec<u64>)>> = Vec::new();
    let t_start = Instant::now();
    for _ in 0..workers {
        let (msg, close, done, errors, stop, path) = (
            msg.clone(),
            close.clone(),
            done.clone(),
            errors.clone(),
            stop.clone(),
            path.clone(),
        );
        cycle_ns.push(tokio::spawn(async move {
            let (mut lat, mut conn) = (Vec::new(), Vec::new());
            while !stop.load(Relaxed) {
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(5), cycle(addr, &path, &msg, &close))
                    .await
                {
                    Ok(Ok(connected)) => {
                        done.fetch_add(1, Relaxed);
                        if t_start.elapsed() > warmup {
                            lat.push(t.elapsed().as_nanos() as u64);
                            conn.push(connected.as_nanos() as u64);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (lat, conn)
        }));
    }
    tokio::time::sleep(warmup).await;
    let (a, ea) = (done.load(Relaxed), errors.load(Relaxed));
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    let (b, eb) = (done.load(Relaxed), errors.load(Relaxed));
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    let (mut lat, mut conn) = (Vec::new(), Vec::new());
    for h in cycle_ns {
        if let Ok(Ok((l, c))) = tokio::time::timeout(Duration::from_secs(6), h).await {
            lat.extend(l);
            conn.extend(c);
        }
    }
    lat.sort_unstable();
    conn.sort_unstable();
    let mut v = json!({
        "mode": "churn", "workers": workers,
        "handshakes_per_s": ((b - a) as f64 / secs).round(), "cycles": b - a, "seconds": secs,
        "errors": eb - ea,
        // Every cycle completed from start to end, warm-up and the last in-flight ones included (what
        // a per-process counter sees over the whole run).
        "total_cycles": done.load(Relaxed),
        "cycle_p50_us": percentile(&lat, 50.0) as f64 / 1000.0,
        "cycle_p99_us": percentile(&lat, 99.0) as f64 / 1000.0,
        "connect_p50_us": percentile(&conn, 50.0) as f64 / 1000.0,
        "connect_p99_us": percentile(&conn, 99.0) as f64 / 1000.0,
    });
    if b == a {
        v["error"] = json!("no cycle completed");
    }
    v
}

/// Holds `conns` idle WebSocket connections; RSS of `pid` (and its children) before and after, then
/// every connection must answer a ping.
async fn idle(args: &Args) -> Value {
    let (addr, path) = parse_url(&args.str("url", "ws://127.0.0.1:9001/bench"));
    let n: usize = args.num("conns", 5000);
    let concurrency: usize = args.num("concurrency", 32);
    let settle = args.secs("settle", 1.0);
    let pid: u32 = args.num("pid", 0);
    let rss_before = rss_tree_kb(pid);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(120);
    let mut held = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut set = tokio::task::JoinSet::new();
    let mut started = 0usize;
    while (started < n || !set.is_empty()) && Instant::now() < deadline {
        while started < n && set.len() < concurrency {
            let path = path.clone();
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), connect_ws(addr, &path)).await
            });
            started += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(Ok((s, pre))))) => held.push((s, pre)),
            Some(_) => failed += 1,
            None => break,
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let rss_after = rss_tree_kb(pid);
    let opened = held.len();
    // Every held connection answers a ping (through the proxy to the echo server and back).
    let ping = Arc::new(frame(0x89, b"idle-check", Some(MASK)));
    let mut pings = tokio::task::JoinSet::new();
    for (mut s, pre) in held {
        let ping = ping.clone();
        pings.spawn(async move {
            let r = tokio::time::timeout(Duration::from_secs(15), async {
                let mut counter = FrameCounter::default();
                if counter.feed(&pre).pongs > 0 {
                    return Ok::<bool, io::Error>(true);
                }
                s.write_all(&ping).await?;
                let mut buf = [0u8; 512];
                loop {
                    let k = s.read(&mut buf).await?;
                    if k == 0 {
                        return Ok(false);
                    }
                    if counter.feed(&buf[..k]).pongs > 0 {
                        return Ok(true);
                    }
                }
            })
            .await;
            (matches!(r, Ok(Ok(true))), s)
        });
    }
    let mut pongs = 0usize;
    let mut keep = Vec::with_capacity(opened);
    while let Some(r) = pings.join_next().await {
        if let Ok((ok, s)) = r {
            pongs += ok as usize;
            keep.push(s);
        }
    }
    let rss_end = rss_tree_kb(pid);
    drop(keep);
    let per_conn = if opened > 0 {
        (rss_after as f64 - rss_before as f64) * 1024.0 / opened as f64
    } else {
        0.0
    };
    let mut v = json!({
        "mode": "idle", "conns": n, "opened": opened, "failed": failed, "open_seconds": open_secs,
        "rss_before_kb": rss_before, "rss_after_kb": rss_after, "rss_after_pings_kb": rss_end,
        "bytes_per_conn": per_conn.round(), "pongs": pongs,
    });
    if opened == 0 || pid == 0 {
        v["error"] = json!("no connection opened or no --pid");
    }
    v
}

/// Waits until one WebSocket echo round trip works through `url`.
async fn wait(args: &Args) -> Value {
    let (addr, path) = parse_url(&args.str("url", "ws://127.0.0.1:9001/bench"));
    let timeout = args.secs("timeout", 15.0);
    let t0 = Instant::now();
    let msg = frame(0x82, b"ready?", Some(MASK));
    let close = frame(0x88, &1000u16.to_be_bytes(), Some(MASK));
    let mut last = String::new();
    while t0.elapsed() < timeout {
        match tokio::time::timeout(Duration::from_secs(2), cycle(addr, &path, &msg, &close)).await {
            Ok(Ok(_)) => {
                return json!({"mode": "wait", "ready_after_s": t0.elapsed().as_secs_f64()})
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    json!({"mode": "wait", "error": format!("not ready after {timeout:?}: {last}")})
}
