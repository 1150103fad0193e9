//! The end-to-end test binary: one binary, one module per area, to keep link times low.

mod api;
mod cli;
mod crds;
mod patch;
mod python_client;
mod rbac;
mod robustness;
mod services;
mod support;
mod tenants;
