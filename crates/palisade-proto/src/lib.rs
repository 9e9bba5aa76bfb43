//! Wire types of Palisade's public interfaces: the JSON the REST API takes and returns.
//!
//! These are plain serde types. Requests refuse unknown fields, so a typo is an error rather
//! than a silently ignored setting. Conversions into validated domain types live at the edge
//! (the server), which maps every failure to a 4xx naming the field.

pub mod access;
pub mod api;
pub mod detect;
pub mod device;
pub mod notify;
pub mod rollout;
pub mod telemetry;

pub use access::*;
pub use api::*;
pub use device::*;
