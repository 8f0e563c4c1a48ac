//! Shared test support: the fault-injecting loopback server.

pub mod server;
