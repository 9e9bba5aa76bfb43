//! Palisade's domain: types that can only hold valid values, and pure logic over them.
//!
//! Architecture invariant: this crate knows nothing about SQL, HTTP, sockets, files or the
//! clock. Time and randomness are passed in, so every rule here is deterministic and testable.

pub mod audit;
pub mod detect;
pub mod device;
pub mod lifecycle;
pub mod mqtt;
pub mod rbac;
pub mod rollout;
pub mod telemetry;
pub mod throttle;
pub mod totp;
pub mod validate;

pub use device::{Criticality, DeviceId, Location};
pub use lifecycle::{IllegalTransition, LifecycleState};
pub use rbac::{Authority, Grant, Permission, PermissionSet, Role, Scope};
pub use validate::InvalidField;
