//! The outbox's file in `telemetry.spool_dir` (`outbox-<dashboard>.jsonl`, one JSON string per line):
//! read once when the outbox opens, rewritten whole — temp file, fsync, rename, fsync of the directory —
//! so that a crash at any moment leaves either the old or the new list, never a torn one. And the
//! sidecar's way to open its outbox, falling back to memory when the spool cannot be used.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Hooks, Outbox};
use crate::events::EventSink;

/// Opens a sidecar's outbox (spooled when `telemetry.spool_dir` is set); when the spool cannot be
/// used, says so at WARN and keeps the outbox in memory (an unreadable file is left untouched).
pub fn for_sidecar(config: &crate::config::Config, sink: EventSink) -> Arc<Outbox> {
    let hooks = Hooks {
        endpoint: config.dashboard.clone(),
        sink,
    };
    let s = config.outbox.clone();
    Arc::new(
        Outbox::open(
            s.clone(),
            config.telemetry.spool_dir.as_deref(),
            hooks.clone(),
        )
        .unwrap_or_else(|e| {
            tracing::warn!(
                event_type = "outbox_spool_unavailable",
                message = %format!("{e}; the prober's outbox is kept in memory only"),
                spool_dir = config.telemetry.spool_dir.as_deref().map(|p| p.display().to_string()),
            );
            Outbox::open(s, None, hooks).expect("a memory outbox")
        }),
    )
}

pub(super) fn read_file(path: &Path) -> std::io::Result<VecDeque<Utf8Bytes>> {
    let f = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(VecDeque::new()),
        r => r?,
    };
    let mut out = VecDeque::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let msg: String = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} line {}: {e}", path.display(), i + 1),
            )
        })?;
        out.push_back(msg.into());
    }
    Ok(out)
}

pub(super) fn write_file(path: &Path, queue: &VecDeque<Utf8Bytes>) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for m in queue {
        serde_json::to_writer(&mut w, m.as_str())?;
        w.write_all(b"\n")?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hooks, settings, texts};
    use super::*;

    #[test]
    fn the_spool_file_survives_a_reopen_until_the_dashboard_confirms() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Outbox::open(settings(10, 10), Some(dir.path()), hooks().0).unwrap();
        let o = open();
        let odd = "line one\nline two, «ünïcode» \"quoted\" 🚀";
        o.offer("first").unwrap();
        o.offer(odd).unwrap();
        o.begin_flush(); // in flight when the process "dies": still in the file
        drop(o);
        let o = open();
        assert_eq!(o.counts().accepted, 2);
        assert_eq!(
            o.bytes(),
            (5 + odd.len()) as u64,
            "the byte count is rebuilt"
        );
        assert_eq!(texts(o.begin_flush()), ["first", odd]);
        o.ack();
        drop(o);
        let o = open();
        assert!(o.is_empty());
        let file = dir.path().join("outbox-pulse.jsonl");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
        assert!(!dir.path().join("outbox-pulse.jsonl.tmp").exists());
    }

    #[test]
    fn an_unreadable_spool_file_is_an_error_and_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("outbox-pulse.jsonl");
        std::fs::write(&file, "\"ok\"\nnot json\n").unwrap();
        let e = Outbox::open(settings(10, 10), Some(dir.path()), hooks().0)
            .err()
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "\"ok\"\nnot json\n"
        );
    }
}
