//! The vocabulary of the OCI Distribution protocol, spoken by both the
//! authorization layer and the registry: repository names, tags,
//! references, upload ids and digests ([`names`], [`digest`]), the parsed
//! request path and the action it needs ([`route`]), query parameters
//! ([`query`]), the protocol's error codes and their JSON ([`error`]), and the
//! body types and response builders ([`response`]).
//!
//! This module sits below `auth` and `registry` and imports neither; both
//! import it. Everything untrusted in a request path is parsed into these
//! types once, here.

pub mod digest;
pub mod error;
pub mod names;
pub mod query;
pub mod response;
pub mod route;

pub use digest::Digest;
pub use error::OciError;
pub use names::{Reference, RepoName, Tag, UploadId};
pub use query::Query;
pub use response::{Body, ByteStream};
pub use route::{Action, Route};
