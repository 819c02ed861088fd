//! The telemetry spool: encoded OTLP export requests waiting to be sent, in order. With a directory they
//! are files (`<seq>-<signal>-<items>.pb`) that survive a restart; without one they are kept in memory.
//! Either way a byte budget bounds it: beyond it the oldest request is dropped, and that is counted per
//! signal (exported as `iskra.sidecar.telemetry.dropped`) and logged by the caller.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::env::Signal;

/// One encoded export request.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Order of arrival.
    pub seq: u64,
    /// Which signal.
    pub signal: Signal,
    /// Spans, log records or points inside.
    pub items: u64,
    /// The protobuf-encoded request (empty while it waits on disk); shared, not copied, when sent.
    pub data: bytes::Bytes,
    /// Its size in bytes.
    pub size: u64,
}

/// The first requests of one signal, merged into one request ([`Spool::front_run`]).
#[derive(Debug)]
pub struct Run {
    /// Their signal.
    pub signal: Signal,
    /// Spans or log records inside, in all.
    pub items: u64,
    /// How many queued requests it merges (pop that many once it is sent).
    pub count: usize,
    /// The merged request.
    pub data: bytes::Bytes,
}

/// The queue.
#[derive(Debug)]
pub struct Spool {
    dir: Option<PathBuf>,
    max_bytes: u64,
    queue: VecDeque<Item>,
    bytes: u64,
    next_seq: u64,
}

/// What a push had to drop to stay within budget.
pub type Dropped = Vec<(Signal, u64)>;

fn signal_name(s: Signal) -> &'static str {
    s.as_str()
}

fn parse_name(name: &str) -> Option<(u64, Signal, u64)> {
    let stem = name.strip_suffix(".pb")?;
    let mut parts = stem.splitn(3, '-');
    let seq = parts.next()?.parse().ok()?;
    let signal = match parts.next()? {
        "traces" => Signal::Traces,
        "logs" => Signal::Logs,
        "metrics" => Signal::Metrics,
        _ => return None,
    };
    Some((seq, signal, parts.next()?.parse().ok()?))
}

impl Spool {
    /// Opens a spool; with `dir`, loads what a previous run left there (in order).
    pub fn open(dir: Option<&Path>, max_bytes: u64) -> std::io::Result<Spool> {
        let mut s = Spool {
            dir: dir.map(Path::to_path_buf),
            max_bytes,
            queue: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
        };
        if let Some(d) = dir {
            std::fs::create_dir_all(d)?;
            let mut found = Vec::new();
            for e in std::fs::read_dir(d)? {
                let e = e?;
                if let Some((seq, signal, items)) = parse_name(&e.file_name().to_string_lossy()) {
                    found.push((seq, signal, items, e.path()));
                }
            }
            found.sort_by_key(|f| f.0);
            for (seq, signal, items, path) in found {
                let size = std::fs::metadata(&path)?.len();
                s.bytes += size;
                s.next_seq = s.next_seq.max(seq + 1);
                let data = bytes::Bytes::new();
                s.queue.push_back(Item {
                    seq,
                    signal,
                    items,
                    data,
                    size,
                });
            }
        }
        Ok(s)
    }

    fn path(&self, it: &Item) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| {
            d.join(format!(
                "{:020}-{}-{}.pb",
                it.seq,
                signal_name(it.signal),
                it.items
            ))
        })
    }

    /// Appends a request; returns what was dropped to make room (oldest first).
    pub fn push(&mut self, signal: Signal, items: u64, data: impl Into<bytes::Bytes>) -> Dropped {
        let data = data.into();
        let size = data.len() as u64;
        let mut it = Item {
            seq: self.next_seq,
            signal,
            items,
            data,
            size,
        };
        self.next_seq += 1;
        let mut dropped = Vec::new();
        if size > self.max_bytes {
            return vec![(signal, items)];
        }
        while self.bytes + size > self.max_bytes {
            match self.pop_front() {
                Some(old) => dropped.push((old.signal, old.items)),
                None => break,
            }
        }
        if let Some(p) = self.path(&it) {
            // On disk it waits there; a write failure (disk full, read-only) keeps it in memory.
            if std::fs::write(p, &it.data).is_ok() {
                it.data = bytes::Bytes::new();
            }
        }
        self.bytes += size;
        self.queue.push_back(it);
        dropped
    }

    /// The oldest request, read back from disk if it waits there (an unreadable file is dropped).
    pub fn front(&mut self) -> Option<&Item> {
        loop {
            let needs_load = self
                .queue
                .front()
                .is_some_and(|it| it.data.is_empty() && it.size > 0);
            if !needs_load {
                return self.queue.front();
            }
            let path = self.queue.front().and_then(|it| self.path(it));
            match path.map(std::fs::read) {
                Some(Ok(data)) => {
                    if let Some(f) = self.queue.front_mut() {
                        f.data = data.into();
                    }
                }
                _ => {
                    self.pop_front();
                }
            }
        }
    }

    /// The oldest requests of the oldest one's signal, up to `max_bytes` together (at least one), as one
    /// request: encoded OTLP export requests concatenate into a valid one (their repeated
    /// `resource_spans` / `resource_logs` fields add up), so a backlog drains many per round trip.
    pub fn front_run(&mut self, max_bytes: u64) -> Option<Run> {
        let signal = self.front()?.signal;
        let (mut count, mut size, mut items) = (0, 0, 0);
        while count < self.queue.len() {
            let it = &self.queue[count];
            if it.signal != signal || (count > 0 && size + it.size > max_bytes) {
                break;
            }
            if it.data.is_empty() && it.size > 0 {
                // Waiting on disk: read it now (an unreadable one ends the run; `front` drops it later).
                let Some(Ok(data)) = self.path(it).map(std::fs::read) else {
                    break;
                };
                self.queue[count].data = data.into();
            }
            let it = &self.queue[count];
            (size, items, count) = (size + it.size, items + it.items, count + 1);
        }
        let data = if count == 1 {
            self.queue[0].data.clone()
        } else {
            let mut buf = bytes::BytesMut::with_capacity(size as usize);
            for it in self.queue.iter().take(count) {
                buf.extend_from_slice(&it.data);
            }
            buf.freeze()
        };
        Some(Run {
            signal,
            items,
            count,
            data,
        })
    }

    /// Removes the oldest request (after it was sent, or to drop it).
    pub fn pop_front(&mut self) -> Option<Item> {
        let mut it = self.queue.pop_front()?;
        self.bytes -= it.size;
        if it.data.is_empty() && it.size > 0 {
            if let Some(p) = self.path(&it) {
                it.data = std::fs::read(p).unwrap_or_default().into();
            }
        }
        if let Some(p) = self.path(&it) {
            let _ = std::fs::remove_file(p);
        }
        Some(it)
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(Some(dir.path()), 1000).unwrap();
        s.push(Signal::Traces, 3, vec![1; 10]);
        s.push(Signal::Logs, 2, vec![2; 10]);
        drop(s);
        let mut s = Spool::open(Some(dir.path()), 1000).unwrap();
        assert_eq!(s.len(), 2);
        let a = s.pop_front().unwrap();
        assert_eq!((a.signal, a.items, a.data[0]), (Signal::Traces, 3, 1));
        s.push(Signal::Traces, 1, vec![3; 10]);
        assert_eq!(s.pop_front().unwrap().data[0], 2);
        assert_eq!(s.pop_front().unwrap().data[0], 3);
        assert!(Spool::open(Some(dir.path()), 1000).unwrap().is_empty());
    }

    #[test]
    fn a_run_merges_the_first_requests_of_one_signal_into_one_that_decodes_as_all() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
        use prost::Message;
        let req = |n: usize| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans::default(); n],
        };
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(Some(dir.path()), 1 << 20).unwrap();
        s.push(Signal::Traces, 1, req(1).encode_to_vec());
        s.push(Signal::Traces, 2, req(2).encode_to_vec());
        s.push(Signal::Logs, 5, vec![0x0a, 0x00]);
        s.push(Signal::Traces, 3, req(3).encode_to_vec());
        let run = s.front_run(1 << 20).unwrap();
        assert_eq!((run.signal, run.items, run.count), (Signal::Traces, 3, 2));
        let merged = ExportTraceServiceRequest::decode(run.data).unwrap();
        assert_eq!(merged.resource_spans.len(), 3);
        // A budget smaller than two requests sends them one at a time.
        let one = s.front_run(1).unwrap();
        assert_eq!((one.items, one.count), (1, 1));
        for _ in 0..run.count {
            s.pop_front();
        }
        let logs = s.front_run(1 << 20).unwrap();
        assert_eq!((logs.signal, logs.items, logs.count), (Signal::Logs, 5, 1));
    }

    #[test]
    fn beyond_the_budget_the_oldest_is_dropped_and_reported() {
        let mut s = Spool::open(None, 25).unwrap();
        assert!(s.push(Signal::Traces, 5, vec![0; 10]).is_empty());
        assert!(s.push(Signal::Logs, 7, vec![0; 10]).is_empty());
        assert_eq!(
            s.push(Signal::Traces, 1, vec![0; 10]),
            vec![(Signal::Traces, 5)]
        );
        assert_eq!(s.bytes(), 20);
        assert_eq!(
            s.push(Signal::Logs, 9, vec![0; 30]),
            vec![(Signal::Logs, 9)]
        );
    }
}
