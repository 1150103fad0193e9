//! The end-to-end test binary: one binary, one module per area, to keep link times low.

mod admission;
mod api;
mod apply;
mod builtin_hooks;
mod cli;
mod cli_workflow;
mod controllers;
mod crd_rules;
mod crds;
mod custom_metadata;
mod defaults;
mod hooks;
mod isolation;
mod manager;
mod metrics;
mod openapi;
mod patch;
mod protobuf;
mod python_client;
mod rbac;
mod robustness;
mod sa_tokens;
mod scale;
mod services;
mod support;
mod tenants;
