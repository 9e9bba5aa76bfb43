//! Integration tests: each starts the real `palisade` binary on port 0 with a fresh data
//! directory and drives it through its public interfaces (HTTPS API, CLI, files).

mod common;

mod api;
mod audit;
mod durability;
mod encryption;
mod operability;
