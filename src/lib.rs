//! # iskra-ws-sidecar
//!
//! An OpenTelemetry-native sidecar that sits in front of one Iskra dashboard's WebSocket server, relays
//! every connection transparently, and turns each lifecycle step into spans, metrics and logs carrying the
//! Iskra ∆DΩΛ, voice and seam attributes.
//!
//! # Layout (in the order data flows)
//! ```text
//! client socket ─▶ proxy (accept, upgrade, relay frames) ─▶ dashboard WS server
//!                    │ events: typed lifecycle events (bounded channel, never blocks the relay)
//! probe ─────────────┤
//!                    ▼
//!            semantics (pure): event ─▶ ∆DΩΛ, voice, seam, error class, log level
//!                    ▼
//!            telemetry: spans · metrics · logs ─▶ OTLP ─▶ collector
//!                                              └▶ admin: /metrics, /health, /ready
//! ```
//! Every module, from the commands down to the leaves (a module imports only those below it):
//! - [`cmd`]: every command of the binary (run, config, check, monitor, demo, chaos).
//! - [`app`]: wiring of one sidecar: bind, start the tasks, drain.
//! - [`admin`]: `/health`, `/ready`, `/metrics`, `POST /probe/send`.
//! - [`telemetry`]: events → spans, metrics, logs; OTLP export with a spool; the health score.
//! - [`proxy`]: listener and limits, upstream dialing, the frame relay.
//! - [`probe`]: the active prober (backoff, heartbeats, failover, downgrade, outbox).
//! - [`semantics`]: pure, table-driven mapping from events to the seed's vocabulary.
//! - [`events`]: the lifecycle event enum, the only seam between data path and telemetry.
//! - [`readiness`]: what the proxy and the prober know about the upstream, for `/ready`.
//! - [`config`]: typed configuration, defaults, validation, figment layering (a leaf).
//! - [`cli`]: the clap definitions (a leaf).
//! - [`diag`]: the sidecar's own diagnostics: `tracing` events, our layer (JSON lines, `RUST_LOG`), the OTLP hook (a leaf).
//! - [`jsonlog`]: the one JSON log line writer (sessions' lines and the sidecar's own) (a leaf).
//! - [`exit`]: the exit codes (a leaf); [`heap`]: giving free memory back to the system (a leaf).
//!
//! The module map, the import rules and the decision to produce OTLP with our own pipeline are in
//! `docs/architecture.md`.

pub mod admin;
pub mod app;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod diag;
pub mod events;
pub mod exit;
pub mod heap;
pub mod jsonlog;
pub mod probe;
pub mod proxy;
pub mod readiness;
pub mod semantics;
pub mod telemetry;
