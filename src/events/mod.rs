//! The lifecycle event vocabulary: the only seam between the data path (proxy, prober) and telemetry.
//!
//! The relay builds an [`Event`] for every step it sees and hands it to an [`EventSink`], which does a
//! non-blocking `try_send` on a bounded channel. When the channel is full the event is counted in
//! [`EventSink::dropped`] and lost; the relay never waits on telemetry.
//!
//! Causes are typed ([`ConnectCause`], [`ProtocolRule`], close codes, HTTP statuses) so that error classes
//! are decided from what happened, never from message text.
//!
//! - [`kinds`]: [`EventKind`], every step the data path and the prober report.
//! - [`causes`]: the typed values events carry (directions, peers, close initiators, opcodes, connect
//!   causes, protocol rules, transports, fallback modes, drop reasons).
//! - [`sink`]: [`Event`] and [`EventSink`], the non-blocking channel.

use std::net::SocketAddr;

pub mod causes;
pub mod kinds;
pub mod sink;

pub use causes::*;
pub use kinds::EventKind;
pub use sink::{Event, EventSink};

/// Per-session identity shared by every event of one proxied connection.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Process-unique session id.
    pub id: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// Request path without its query string.
    pub path: String,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
    /// The upstream name (`primary` or a backup's name) and its host and port.
    pub upstream_name: String,
    /// Upstream host.
    pub upstream_host: String,
    /// Upstream port.
    pub upstream_port: u16,
}

/// Counters of one finished session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// Data messages client → upstream.
    pub messages_in: u64,
    /// Data messages upstream → client.
    pub messages_out: u64,
    /// Payload bytes client → upstream.
    pub bytes_in: u64,
    /// Payload bytes upstream → client.
    pub bytes_out: u64,
}
