//! The Palisade device agent, as a library (the `palisade agent` command and the fleet
//! simulator run on it).
//!
//! - `config`: `agent.toml`, one declared schema; errors name the key.
//! - `collect`: what a Linux device can tell about itself, read from `/proc` and `/sys` (each
//!   source parsed by a pure function, tested on captured samples).
//! - `diagnostics`: the `collect-diagnostics` bundle (processes, sockets, log tail).
//! - `fleet`: the fleet simulator's virtual devices and attack scenarios, sans I/O.
//! - `run`: enrollment over EST (the key is made on the device and never leaves it), the MQTT
//!   session with backoff, and commands.
//! - `sim`: `palisade sim`, the simulated fleet run against a real server (registration through
//!   the API, EST per device, the behaviour model on the network, load figures).
//! - `spool`: telemetry kept on disk while the server is unreachable, bounded (oldest dropped and
//!   counted), sent in order when the connection returns.
//! - `update`: signed firmware updates (TUF): verify, download with resume, install into the
//!   inactive A/B slot, health check, commit or roll back.

pub mod collect;
pub mod config;
pub mod diagnostics;
pub mod fleet;
pub mod http;
pub mod run;
pub mod sim;
pub mod spool;
pub mod update;
