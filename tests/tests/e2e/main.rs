//! The end-to-end test binary: one binary, one module per area, to keep link times low.

mod api;
mod apply;
mod cli;
mod crd_rules;
mod crds;
mod custom_metadata;
mod defaults;
mod manager;
mod openapi;
mod patch;
mod protobuf;
mod python_client;
mod rbac;
mod robustness;
mod scale;
mod services;
mod support;
mod tenants;
