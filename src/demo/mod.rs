//! The embedded default: demo dashboards (small WebSocket servers like Pulse, Seams and Voices).

pub mod dashboard;
