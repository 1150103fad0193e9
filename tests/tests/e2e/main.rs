//! The end-to-end test binary: one binary, one module per area, to keep link times low.

mod api;
mod cli;
mod protobuf;
mod robustness;
mod services;
mod support;
mod tenants;
