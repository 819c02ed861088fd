//! `monitor --send FILE`: every line of FILE (`-`: standard input) is queued in an outbox and delivered
//! to the monitor's first endpoint by a prober of its own — the sidecar's prober, with its backoff,
//! heartbeats and flush confirmation ([`super::outbox`]) — through reconnects, in order.
//!
//! - Lines are read as they come (stdin may stay open). When the outbox is full — `buffer_max_size`
//!   lines or `buffer_max_bytes` bytes held — reading waits for room (backpressure on the file or pipe)
//!   instead of refusing lines.
//! - A line that cannot be sent — not UTF-8, or longer than `limits.max_message_size` or than the whole
//!   byte budget `websocket.fallback.buffer_max_bytes` — is reported on stderr with its number and
//!   counted as dropped. Empty lines are skipped.
//! - After its last round (`--count`), the monitor waits until the input is read and every queued line
//!   is confirmed; Ctrl-C stops it, and what is left is reported as pending.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::outbox::{Hooks, Outbox};
use super::{Prober, Target};
use crate::config::Config;
use crate::events::EventSink;

/// A `--send` in progress.
pub struct Sending {
    url: String,
    outbox: Arc<Outbox>,
    /// Lines dropped before reaching the outbox.
    skipped: Arc<AtomicU64>,
    reader: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

async fn read_lines(
    mut input: impl AsyncBufRead + Unpin,
    outbox: Arc<Outbox>,
    (max, key): (u64, &'static str),
    skipped: Arc<AtomicU64>,
) {
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => n += 1,
            Err(e) => {
                eprintln!("warning: reading the --send input stopped at line {n}: {e}");
                return;
            }
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.is_empty() {
            continue;
        }
        if buf.len() as u64 > max {
            eprintln!(
                "warning: line {n} not sent: {} bytes, over {key} ({max})",
                buf.len()
            );
            skipped.fetch_add(1, Relaxed);
            continue;
        }
        match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(text) => {
                if let Err(e) = outbox.offer_waiting(text).await {
                    eprintln!("warning: line {n} not sent: {e}");
                }
            }
            Err(_) => {
                eprintln!(
                    "warning: line {n} not sent: not UTF-8 (a WebSocket text message must be)"
                );
                skipped.fetch_add(1, Relaxed);
            }
        }
    }
}

impl Sending {
    /// Opens the input and starts reading and delivering; an unusable input or a disabled outbox is a
    /// usage error.
    pub async fn start(cfg: &Config, url: &str, input: &Path) -> Result<Sending, String> {
        if !cfg.outbox.enabled {
            return Err(
                "--send needs the outbox: websocket.fallback.buffer_messages is false".into(),
            );
        }
        let hooks = Hooks {
            endpoint: "monitor".into(),
            sink: EventSink::disabled(),
            registry: None,
        };
        let outbox =
            Arc::new(Outbox::open(cfg.outbox.clone(), None, hooks).map_err(|e| e.to_string())?);
        let reader: Box<dyn AsyncBufRead + Unpin + Send> = if input == Path::new("-") {
            Box::new(BufReader::new(tokio::io::stdin()))
        } else {
            let f = tokio::fs::File::open(input)
                .await
                .map_err(|e| format!("--send {}: {e}", input.display()))?;
            Box::new(BufReader::new(f))
        };
        let skipped = Arc::new(AtomicU64::new(0));
        // A line longer than the whole byte budget could never be queued (waiting would never end).
        let max = if cfg.outbox.max_bytes < cfg.limits.max_message_size {
            (cfg.outbox.max_bytes, "websocket.fallback.buffer_max_bytes")
        } else {
            (cfg.limits.max_message_size, "limits.max_message_size")
        };
        let reader = tokio::spawn(read_lines(reader, outbox.clone(), max, skipped.clone()));
        let (stop, stopped) = watch::channel(false);
        let prober = Prober {
            target: Target {
                endpoint: "monitor".into(),
                urls: vec![url.to_string()],
            },
            config: Arc::new(cfg.clone()),
            sink: EventSink::disabled(),
            primary_up: None,
            paths: cfg.probe_paths.clone(),
            outbox: Some(outbox.clone()),
            rejected: Default::default(),
        };
        tokio::spawn(prober.run(stopped));
        Ok(Sending {
            url: super::redact(url),
            outbox,
            skipped,
            reader,
            stop,
        })
    }

    /// `{"url", "queued", "delivered", "dropped", "pending"}`: lines accepted, confirmed by the
    /// dashboard, refused, and still waiting.
    pub fn report(&self) -> Value {
        let c = self.outbox.counts();
        json!({"url": self.url, "queued": c.accepted, "delivered": c.delivered,
               "dropped": c.dropped + self.skipped.load(Relaxed), "pending": c.queued})
    }

    /// True when the input is read, every accepted line confirmed and none dropped.
    pub fn done(&self) -> bool {
        self.reader.is_finished() && self.outbox.is_empty()
    }

    fn ok(&self) -> bool {
        self.done() && self.outbox.counts().dropped + self.skipped.load(Relaxed) == 0
    }

    /// Stops delivering and prints the final report (`sendComplete`); returns whether everything read
    /// was delivered.
    pub fn stop(&self, json: bool) -> bool {
        let _ = self.stop.send(true);
        self.reader.abort();
        let r = self.report();
        if json {
            let mut line = json!({"event": "sendComplete"});
            if let (Some(o), Value::Object(f)) = (line.as_object_mut(), r) {
                o.extend(f);
            }
            println!("{line}");
        } else {
            println!("{}", self.text());
        }
        self.ok()
    }

    /// The report as one line of text.
    pub fn text(&self) -> String {
        let r = self.report();
        format!(
            "send → {}: {} queued, {} delivered, {} dropped, {} pending",
            r["url"].as_str().unwrap_or(""),
            r["queued"],
            r["delivered"],
            r["dropped"],
            r["pending"]
        )
    }

    /// Waits until the input is read and every line confirmed (or Ctrl-C), then [`Sending::stop`]s.
    pub async fn finish(self, json: bool) -> bool {
        while !self.done() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        self.stop(json)
    }
}
