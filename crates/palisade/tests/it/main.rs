//! Integration tests: each starts the real `palisade` binary on port 0 with a fresh data
//! directory and drives it through its public interfaces (HTTPS API, CLI, files).

// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

mod access;
mod agent;
mod api;
mod audit;
mod browser;
mod checks;
mod console;
mod detect;
mod durability;
mod encryption;
mod firmware;
mod identity;
mod mqtt;
mod notify;
mod operability;
mod rollout;
mod sim;
mod vulns;
