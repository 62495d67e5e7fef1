//! radfm-serve's one integration-test binary: the router with a stand-in
//! model (no socket), and a real socket for graceful shutdown.

mod common;
mod server;
