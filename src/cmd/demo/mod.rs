//! The embedded default (`iskra-ws-sidecar demo`): three demo dashboards (Pulse, Seams, Voices), a
//! sidecar in front of each, and synthetic clients that connect, chat, reconnect and now and then
//! misbehave (random disconnects, protocol violations, a dashboard restart) — with a live view.
//!
//! - [`dashboard`]: the demo dashboard server (also `iskra-ws-sidecar demo-dashboard`).
//! - [`view`]: live figures and their rendering.

pub mod dashboard;
pub mod view;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::app::{self, Embed, Running};
use crate::cli::DemoArgs;
use crate::config::{defaults, from_tree};
use crate::telemetry::env::{OtelEnv, Protocol, Signal, SignalTarget};
use dashboard::Dashboard;
use view::Seen;

const NAMES: [&str; 3] = ["pulse", "seams", "voices"];

/// Where the demo's telemetry goes: the configured collector if it answers, else an OTLP JSON file.
async fn telemetry_target(name: &str, file: &std::path::Path) -> (OtelEnv, String) {
    let service = format!("iskra-ws-sidecar-{name}");
    let extra = [("iskra.dashboard".to_string(), name.to_string())];
    let mut env = OtelEnv::from_process(&service, &extra);
    if let Ok(ep) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        if let Some((host, port)) =
            crate::probe::transports::host_port(&ep.replace("https://", "http://"))
        {
            let reach = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await;
            if matches!(reach, Ok(Ok(_))) {
                return (env, format!("OTLP → {ep}"));
            }
        }
    }
    let target = SignalTarget {
        endpoint: format!("file://{}", file.display()),
        protocol: Protocol::HttpJson,
        headers: vec![],
        timeout: Duration::from_secs(5),
        certificate: None,
        client_cert: None,
    };
    env.targets = [Signal::Traces, Signal::Metrics, Signal::Logs]
        .into_iter()
        .map(|s| (s, target.clone()))
        .collect();
    env.disabled = false;
    env.span_delay = Duration::from_secs(1);
    env.metric_interval = Duration::from_secs(5);
    (env, format!("OTLP JSON lines → {}", file.display()))
}

struct Dash {
    name: &'static str,
    port: u16,
    server: Arc<Dashboard>,
    running: Running,
    seen: Arc<Mutex<Seen>>,
    last_msgs: u64,
}

async fn start_dashboard(name: &str, port: u16) -> std::io::Result<(u16, Arc<Dashboard>)> {
    let l = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = l.local_addr()?.port();
    let d = Dashboard::new(name, Duration::from_millis(500));
    tokio::spawn(d.clone().serve(l));
    Ok((port, d))
}

/// One synthetic client: connects through the sidecar, chats, reads updates, and ends its session in a
/// random way (normal close, abrupt drop, or a protocol violation), then reconnects. Client 0 keeps its
/// session for the whole demo, as a browser tab would.
async fn client(addr: SocketAddr, id: usize) {
    let mut round = 0u64;
    loop {
        round += 1;
        let url = format!("ws://{addr}/live?client={id}");
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(url),
        )
        .await
        else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        // Client 0 stays like an open browser tab (its session lives through the Seams restart and is
        // held); the others come and go every few seconds.
        let life = match id {
            0 => Duration::from_secs(24 * 3600),
            _ => Duration::from_millis(1500 + rand::random::<u64>() % 3000),
        };
        let t0 = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while t0.elapsed() < life {
            tokio::select! {
                _ = tick.tick() => {
                    let msg = serde_json::json!({"type": "chat", "client": id, "round": round, "text": "∆DΩΛ"}).to_string();
                    if ws.send(Message::text(msg)).await.is_err() { break; }
                }
                m = ws.next() => if !matches!(m, Some(Ok(_))) { break; },
            }
        }
        match rand::random::<u32>() % 25 {
            0 => drop(ws), // random disconnection: the TCP connection just goes away
            1 => {
                // protocol violation: an unmasked client frame
                if let tokio_tungstenite::MaybeTlsStream::Plain(mut raw) = ws.into_inner() {
                    let _ = raw.write_all(&[0x81, 0x03, b'b', b'a', b'd']).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            _ => {
                let _ = ws.close(None).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200 + rand::random::<u64>() % 600)).await;
    }
}

/// `iskra-ws-sidecar demo`.
pub async fn command(args: DemoArgs) -> u8 {
    let dir = std::env::temp_dir().join(format!("iskra-demo-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("otlp.jsonl");
    let tty = std::io::stdout().is_terminal();
    let mut dashes = Vec::new();
    let mut where_to = String::new();
    for name in NAMES {
        let (port, server) = match start_dashboard(name, 0).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: cannot start the {name} demo dashboard: {e}");
                return 1;
            }
        };
        let mut tree = defaults();
        tree["dashboard"] = name.into();
        tree["listen"] = "127.0.0.1:0".into();
        tree["admin"] = "127.0.0.1:0".into();
        tree["upstream"] = format!("ws://127.0.0.1:{port}").into();
        tree["websocket"]["heartbeat"] = serde_json::json!({"enabled": true, "interval": 1000, "timeout": 500, "failure_threshold": 3});
        tree["websocket"]["reconnection"] = serde_json::json!({"max_attempts": 5, "initial_delay": 200, "backoff_multiplier": 1.5, "max_delay": 2000, "jitter": true});
        tree["limits"]["upstream_timeout_ms"] = 1000.into();
        // Sessions are held through the Seams restart below (as the Helm chart and compose stack do).
        tree["resume"]["hold_ms"] = 5000.into();
        // The live view's status reads the last 15 s: what the synthetic clients did a minute ago
        // should not colour it now.
        tree["health"]["window_ms"] = 15000.into();
        let config = from_tree(&tree).expect("demo config is valid");
        let (env, desc) = telemetry_target(name, &file).await;
        where_to = desc;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let running = match app::start_embedded(
            config,
            Embed {
                tap: Some(tx),
                otel: Some(env),
                quiet: true,
            },
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                s.lock().unwrap_or_else(|e| e.into_inner()).record(&ev);
            }
        });
        for id in 0..args.clients {
            tokio::spawn(client(running.addr, id));
        }
        dashes.push(Dash {
            name,
            port,
            server,
            running,
            seen,
            last_msgs: 0,
        });
    }
    println!(
        "iskra-ws-sidecar demo: 3 dashboards, a sidecar in front of each, {} clients each",
        args.clients
    );
    for d in &dashes {
        println!(
            "  {:<6} dashboard 127.0.0.1:{:<5}  sidecar ws://{}  admin http://{}/metrics",
            d.name, d.port, d.running.addr, d.running.admin_addr
        );
    }
    println!("  telemetry: {where_to}");
    println!(
        "  {}",
        if args.duration.is_some() {
            "runs for the given --duration; Ctrl-C ends it early"
        } else {
            "Ctrl-C ends it"
        }
    );
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut restarted = false;
    let end = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {}
        }
        let t = started.elapsed().as_secs();
        // The seed's chaos: the Seams dashboard restarts at 4 s (down for 2 s); its clients' sessions
        // are held and resumed (RESUMED), the prober still sees it down.
        if t == 4 && !restarted {
            restarted = true;
            dashes[1].server.stop();
        }
        if t == 6 && restarted {
            if let Ok((_, h)) = start_dashboard("seams", dashes[1].port).await {
                dashes[1].server = h;
            }
        }
        let mut out = String::new();
        if tty {
            out.push_str("\x1b[H\x1b[2J");
            let head = format!("iskra-ws-sidecar demo  t={t}s  telemetry: ");
            let room = 80usize.saturating_sub(head.chars().count());
            out.push_str(&format!(
                "{head}{}\n\n{}\n",
                short(&where_to, room),
                view::HEADER
            ));
        } else {
            out.push_str(&format!("t={t}s\n"));
        }
        for d in dashes.iter_mut() {
            let msgs = view::messages(&d.running);
            let rate = (msgs - d.last_msgs) as f64;
            d.last_msgs = msgs;
            let seen = d.seen.lock().unwrap_or_else(|e| e.into_inner());
            out.push_str(&view::row(d.name, &d.running, &seen, rate));
            out.push('\n');
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
    }
    summary(&dashes, started.elapsed(), &where_to);
    for d in dashes {
        d.running.shutdown().await;
        d.server.stop();
    }
    0
}

/// `s` cut from the left to at most `room` characters (the end of a path is the useful part).
fn short(s: &str, room: usize) -> String {
    let n = s.chars().count();
    if n <= room {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n + 1 - room.max(1)).collect();
    format!("…{tail}")
}

fn summary(dashes: &[Dash], took: Duration, where_to: &str) {
    println!("\nSUMMARY after {:.1}s", took.as_secs_f64());
    println!(
        "{:<7}{:>9}{:>10}{:>8}  {:<13}{:<13}ERRORS BY CLASS",
        "DASH", "SESSIONS", "MESSAGES", "RESUMED", "HS p50/p99", "PING p50/99"
    );
    for d in dashes {
        let seen = d.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (h50, h99) = view::p50_p99(seen.all_handshakes.iter().copied());
        let (p50, p99) = view::p50_p99(seen.all_pings.iter().copied());
        let (errs, _) = view::errors(&d.running);
        println!(
            "{:<7}{:>9}{:>10}{:>8}  {:<13}{:<13}{}",
            d.name,
            seen.sessions,
            view::messages(&d.running),
            seen.resumed,
            format!("{h50:.1}/{h99:.1}ms"),
            format!("{p50:.1}/{p99:.1}ms"),
            errs
        );
    }
    println!("telemetry: {where_to}");
}
