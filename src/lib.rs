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
//! - [`config`]: typed configuration, defaults, validation, figment layering.
//! - [`proxy`]: listener and limits, upstream dialing, the frame relay.
//! - [`probe`]: the active prober (backoff, heartbeats, failover, downgrade).
//! - [`events`]: the lifecycle event enum, the only seam between data path and telemetry.
//! - [`semantics`]: pure, table-driven mapping from events to the seed's vocabulary.
//! - [`admin`]: `/health`, `/ready`, `/metrics`.
//! - [`jsonlog`]: the one JSON log line writer (sessions' lines and the sidecar's own), with levels.
//!
//! The module map, the import rules and the decision to produce OTLP with our own pipeline are in
//! `docs/architecture.md`.

pub mod admin;
pub mod app;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod demo;
pub mod events;
pub mod jsonlog;
pub mod probe;
pub mod proxy;
pub mod semantics;
pub mod telemetry;
