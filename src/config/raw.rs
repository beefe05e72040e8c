//! `proxy.yaml` as written: every field optional, unknown keys refused
//! (`deny_unknown_fields`), so a typo is an error with its line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::auth::acl::RawAccess;
use crate::auth::ldap::LdapConfig;
use crate::auth::{Backend, Challenge};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: Option<SocketAddr>,
    pub(super) storage: Option<RawStorage>,
    pub(super) trust_forwarded_headers: Option<bool>,
    pub(super) tls: Option<RawTls>,
    pub(super) auth: Option<RawAuth>,
    pub(super) groups: Option<BTreeMap<String, Vec<String>>>,
    pub(super) access: Option<RawAccess>,
    pub(super) limits: Option<super::limits::RawLimits>,
    pub(super) gc: Option<super::space::RawGc>,
    pub(super) uploads: Option<super::space::RawUploads>,
    pub(super) admin: Option<super::ops::RawAdmin>,
    pub(super) log: Option<super::ops::RawLog>,
    pub(super) shutdown_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) enabled: Option<bool>,
    pub(super) challenge: Option<Challenge>,
    pub(super) htpasswd: Option<PathBuf>,
    pub(super) ldap: Option<LdapConfig>,
    pub(super) order: Option<Vec<Backend>>,
    pub(super) token: Option<RawToken>,
    pub(super) cache_secs: Option<u64>,
    pub(super) failed_logins: Option<RawFailedLogins>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFailedLogins {
    pub(super) per_user: Option<u32>,
    pub(super) per_address: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) service: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) expiry_secs: Option<u64>,
    pub(super) refresh_expiry_secs: Option<u64>,
    pub(super) key: Option<PathBuf>,
    pub(super) realm: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) enabled: Option<bool>,
    pub(super) dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) hosts: Vec<String>,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
    pub(super) ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) filesystem: Option<RawFilesystem>,
    pub(super) s3: Option<RawS3>,
}

/// `storage.s3` (see `registry::storage::s3::settings`). The keys are read
/// from `credentials_file` or the environment, never from this file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawS3 {
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) bucket: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) path_style: Option<bool>,
    pub(super) credentials_file: Option<PathBuf>,
    pub(super) redirect: Option<bool>,
    pub(super) redirect_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilesystem {
    pub(super) root: Option<PathBuf>,
}
