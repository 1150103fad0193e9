//! The end-to-end test binary: one binary, one module per area, to keep link times low.

mod api;
mod cli;
mod openapi;
mod robustness;
mod services;
mod support;
mod tenants;
