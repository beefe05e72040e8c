//! The `auth.ldap` section: its fields and defaults, every problem with
//! it at once, and the files it names (service password, CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::secret::Secret;

/// The `ldap:` section of the configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    /// The CA (PEM) of the directory's certificate: the only trust anchor.
    pub ca_file: Option<PathBuf>,
    /// Service account (search-then-bind mode).
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    /// Alternative to `bind_password`: read at startup, trimmed.
    pub bind_password_file: Option<PathBuf>,
    pub user_base: Option<String>,
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Direct-bind mode, e.g. `uid={username},ou=people,dc=example,dc=org`.
    pub user_dn_template: Option<String>,
    pub group_base: Option<String>,
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    #[serde(default = "default_group_name_attribute")]
    pub group_name_attribute: String,
    /// `""` disables group names from the user's own entry.
    #[serde(default = "default_member_of_attribute")]
    pub member_of_attribute: String,
    /// Connect timeout, and the timeout of each operation.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Idle service-account connections kept for reuse.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_user_filter() -> String {
    "(uid={username})".into()
}
fn default_group_filter() -> String {
    "(|(member={dn})(uniqueMember={dn})(memberUid={username}))".into()
}
fn default_group_name_attribute() -> String {
    "cn".into()
}
fn default_member_of_attribute() -> String {
    "memberOf".into()
}
fn default_timeout_secs() -> u64 {
    5
}
fn default_pool_size() -> usize {
    4
}

impl LdapConfig {
    /// Every problem with this section (empty if none).
    #[rustfmt::skip]
    pub fn validate(&self) -> Vec<String> {
        let scheme = (self.url.split_once("://"))
            .filter(|(_, host)| !host.trim_end_matches('/').is_empty())
            .map(|(scheme, _)| scheme);
        let tls = scheme == Some("ldaps") || self.starttls;
        let search = self.bind_dn.is_some() || self.user_base.is_some();
        let has_pw = self.bind_password.is_some() || self.bind_password_file.is_some();
        let (filter, group_filter) = (&self.user_filter, &self.group_filter);
        let grouping = self.group_base.is_some();
        [
            (!matches!(scheme, Some("ldap" | "ldaps")), "ldap.url must be ldap://host:port or ldaps://host:port"),
            (self.starttls && scheme == Some("ldaps"), "ldap.starttls is for ldap:// URLs (ldaps:// is TLS already)"),
            (tls && self.ca_file.is_none(), "ldaps:// and StartTLS need ldap.ca_file (the CA of the directory's certificate)"),
            (!tls && self.ca_file.is_some(), "ldap.ca_file is only used with ldaps:// or starttls"),
            (search == self.user_dn_template.is_some(), "set ldap.user_dn_template (direct bind) or ldap.bind_dn + user_base (search)"),
            (search && (self.bind_dn.is_none() || self.user_base.is_none()), "search mode needs both ldap.bind_dn and ldap.user_base"),
            (self.bind_dn.is_some() && !has_pw, "ldap.bind_dn needs bind_password or bind_password_file"),
            (self.bind_password.is_some() && self.bind_password_file.is_some(), "set ldap.bind_password or bind_password_file, not both"),
            (has_pw && self.bind_dn.is_none(), "ldap.bind_password is set without ldap.bind_dn"),
            (search && !(filter.starts_with('(') && filter.contains("{username}")), "ldap.user_filter must be a filter with {username}"),
            (self.user_dn_template.as_ref().is_some_and(|t| !t.contains("{username}")), "ldap.user_dn_template must contain {username}"),
            (grouping && !group_filter.contains("{dn}") && !group_filter.contains("{username}"), "ldap.group_filter must contain {dn} or {username}"),
            (grouping && self.group_name_attribute.is_empty(), "ldap.group_name_attribute must not be empty"),
            (self.timeout_secs == 0, "ldap.timeout_secs must be at least 1"),
        ]
        .into_iter()
        .filter(|(bad, _)| *bad)
        .map(|(_, problem)| problem.to_string())
        .collect()
    }
}

pub(crate) fn read_password_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read ldap.bind_password_file {shown}: {e}"))?;
    match text.trim() {
        "" => Err(format!("ldap.bind_password_file {shown} is empty")),
        pw => Ok(Secret::new(pw)),
    }
}

/// A TLS client config trusting exactly the certificates in `ca_file`.
pub(crate) fn tls_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let bad = |e: &dyn std::fmt::Display| format!("ldap.ca_file {}: {e}", ca_file.display());
    let pem = std::fs::read(ca_file).map_err(|e| bad(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"holds no PEM certificate"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?;
    Ok(Arc::new(
        config.with_root_certificates(roots).with_no_client_auth(),
    ))
}
