//! regproxy: a private container registry with a TLS-terminating,
//! authenticating front, in one binary.
//!
//! Layers, in the order a request flows through them:
//! [`cli`] -> [`config`] -> [`proxy`] (listener, per-request pipeline) ->
//! [`ui`] (the web pages, for `/ui/`) -> [`auth`] -> [`registry`] (routes, names, digests, uploads, manifests,
//! storage).

pub mod auth;
pub mod cli;
pub mod config;
pub mod files;
pub mod metrics;
pub mod oci;
pub mod proxy;
pub mod registry;
pub mod reload;
pub mod tls;
pub mod ui;
