//! LDAP login: checks a username and password against a directory and
//! collects the user's groups.
//!
//! Two modes: search-then-bind (a pooled service-account connection finds
//! the user's entry, then the user binds as that DN on a fresh connection)
//! and direct bind (`user_dn_template`). Over `ldap://`, `ldaps://` or
//! StartTLS, trusting only the configured CA file. Usernames are escaped into
//! filters and DNs; an empty password never reaches the server (it would be
//! an unauthenticated bind); every connect and operation has a timeout. A
//! directory that is down or slow is [`Unavailable`], never a wrong password.
//! Passwords are never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{dn_escape, ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope};

use super::identity::{Identity, Source, Unavailable, Verdict};
use super::secret::Secret;

/// Longest username accepted, in bytes.
const MAX_USERNAME: usize = 256;

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

/// How a user's DN is found.
enum Mode {
    Search {
        bind_dn: String,
        password: Secret,
        base: String,
    },
    Direct {
        template: String,
    },
}

/// A configured LDAP directory, ready for logins.
pub struct LdapBackend {
    config: LdapConfig,
    mode: Mode,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    /// Idle service-account connections, already bound.
    pool: Mutex<Vec<Ldap>>,
}

impl std::fmt::Debug for LdapBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapBackend")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl LdapBackend {
    /// Checks the config, reads the password file and the CA file.
    pub fn new(config: LdapConfig) -> Result<LdapBackend, String> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let c = &config;
        let mode = match (
            &c.user_dn_template,
            &c.bind_dn,
            &c.user_base,
            &c.bind_password,
            &c.bind_password_file,
        ) {
            (Some(t), ..) => Mode::Direct {
                template: t.clone(),
            },
            (None, Some(dn), Some(base), Some(pw), _) => Mode::Search {
                bind_dn: dn.clone(),
                password: pw.clone(),
                base: base.clone(),
            },
            (None, Some(dn), Some(base), None, Some(path)) => Mode::Search {
                bind_dn: dn.clone(),
                password: read_password_file(path)?,
                base: base.clone(),
            },
            _ => return Err("ldap: incomplete configuration".into()),
        };
        let tls = c.ca_file.as_deref().map(tls_config).transpose()?;
        if tls.is_none() {
            tracing::warn!(url = %c.url, "LDAP passwords are sent unencrypted (ldap:// without StartTLS)");
        }
        let timeout = Duration::from_secs(c.timeout_secs);
        Ok(LdapBackend {
            config,
            mode,
            tls,
            timeout,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Checks `password` for `user` and collects the user's groups.
    pub async fn authenticate(
        &self,
        user: &str,
        password: &Secret,
    ) -> Result<Verdict, Unavailable> {
        if let Some(why) = bad_username(user) {
            tracing::debug!(why, "LDAP login refused: unusable username");
            return Ok(Verdict::Rejected);
        }
        if password.is_empty() {
            tracing::debug!(user, "LDAP login refused: empty password (never sent)");
            return Ok(Verdict::Rejected);
        }
        let mut name = user.to_string();
        let (dn, mut groups) = match &self.mode {
            Mode::Search { base, .. } => {
                let name_attr = name_attribute(&self.config.user_filter);
                let mut attrs = self.member_of_attrs();
                attrs.extend(name_attr.clone());
                let found = self.find_user(base, user, attrs).await?;
                let [entry] = found.as_slice() else {
                    if found.len() > 1 {
                        tracing::warn!(
                            user,
                            count = found.len(),
                            "LDAP user filter matches several entries"
                        );
                    }
                    return Ok(Verdict::UnknownUser);
                };
                // The directory's spelling of the name (uid matching is
                // usually case-insensitive), so `ALICE` is user `alice`
                // for the access rules, the tokens and the logs.
                if let Some(canonical) =
                    name_attr.and_then(|a| entry.values(&a).find(|v| v.eq_ignore_ascii_case(user)))
                {
                    name = canonical;
                }
                (entry.dn.clone(), self.member_of(entry))
            }
            Mode::Direct { template } => (
                fill(template, &[("{username}", &dn_escape(user))]),
                Vec::new(),
            ),
        };
        let mut conn = self.connect().await?;
        let result = self
            .bind_and_read_groups(&mut conn, &dn, user, password)
            .await;
        let _ = conn.with_timeout(self.timeout).unbind().await;
        let Some(more) = result? else {
            return Ok(Verdict::Rejected);
        };
        groups.extend(more);
        groups.retain(|g| !g.is_empty());
        groups.sort();
        groups.dedup();
        tracing::debug!(user = %name, ?groups, "LDAP login accepted");
        Ok(Verdict::Accepted(Identity {
            user: name,
            groups,
            source: Source::Ldap,
        }))
    }

    /// Whether the directory has exactly one entry for `user` (search mode);
    /// direct-bind mode cannot tell without a password and says `true`.
    pub async fn user_exists(&self, user: &str) -> Result<bool, Unavailable> {
        let Mode::Search { base, .. } = &self.mode else {
            return Ok(true);
        };
        if bad_username(user).is_some() {
            return Ok(false);
        }
        Ok(self.find_user(base, user, vec!["1.1".into()]).await?.len() == 1)
    }

    async fn find_user(
        &self,
        base: &str,
        user: &str,
        attrs: Vec<String>,
    ) -> Result<Vec<Entry>, Unavailable> {
        let filter = fill(
            &self.config.user_filter,
            &[("{username}", &ldap_escape(user))],
        );
        self.search(None, "user search", base, Scope::Subtree, &filter, attrs)
            .await
    }

    /// Binds as the user (`None`: the directory refused the password), then
    /// reads the groups: with the user's rights in direct-bind mode, with
    /// the service account's in search mode.
    async fn bind_and_read_groups(
        &self,
        conn: &mut Ldap,
        dn: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Option<Vec<String>>, Unavailable> {
        let result = conn
            .with_timeout(self.timeout)
            .simple_bind(dn, password.expose())
            .await;
        match result.map_err(|e| self.fail("bind", e))? {
            r if r.rc == 0 => {}
            // inappropriateAuthentication, invalidCredentials,
            // insufficientAccessRights, unwillingToPerform (locked, expired)
            r if matches!(r.rc, 48 | 49 | 50 | 53) => {
                tracing::debug!(dn, rc = r.rc, text = %r.text, "LDAP bind refused");
                return Ok(None);
            }
            result => return Err(self.fail("bind", LdapError::LdapResult { result })),
        }
        let direct = matches!(self.mode, Mode::Direct { .. });
        let mut groups = Vec::new();
        if direct && !self.config.member_of_attribute.is_empty() {
            let attrs = self.member_of_attrs();
            let own = self
                .search(
                    Some(conn),
                    "reading the user's entry",
                    dn,
                    Scope::Base,
                    "(objectClass=*)",
                    attrs,
                )
                .await?;
            groups.extend(own.iter().flat_map(|e| self.member_of(e)));
        }
        if let Some(base) = &self.config.group_base {
            let name = &self.config.group_name_attribute;
            let filter = fill(
                &self.config.group_filter,
                &[
                    ("{dn}", &ldap_escape(dn)),
                    ("{username}", &ldap_escape(user)),
                ],
            );
            let on = if direct { Some(conn) } else { None };
            let found = self
                .search(
                    on,
                    "group search",
                    base,
                    Scope::Subtree,
                    &filter,
                    vec![name.clone()],
                )
                .await?;
            groups.extend(found.iter().flat_map(|g| g.values(name)));
        }
        Ok(Some(groups))
    }

    /// A search on `on`, or else on a pooled service-account connection (a
    /// pooled connection the server closed meanwhile is replaced once).
    async fn search(
        &self,
        on: Option<&mut Ldap>,
        what: &str,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<String>,
    ) -> Result<Vec<Entry>, Unavailable> {
        if let Some(conn) = on {
            return search(conn, self.timeout, base, scope, filter, attrs)
                .await
                .map_err(|e| self.fail(what, e));
        }
        let pooled = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| pool.pop()).find(|c| !c.clone().is_closed())
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.service_connection().await?,
        };
        let mut result = search(&mut conn, self.timeout, base, scope, filter, attrs.clone()).await;
        if reused && matches!(&result, Err(e) if connection_lost(e)) {
            tracing::debug!(url = %self.config.url, "pooled LDAP connection was closed; opening a new one");
            conn = self.service_connection().await?;
            result = search(&mut conn, self.timeout, base, scope, filter, attrs).await;
        }
        // A connection that failed is dropped, not returned.
        let entries = result.map_err(|e| self.fail(what, e))?;
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.config.pool_size {
            pool.push(conn);
        }
        Ok(entries)
    }

    async fn service_connection(&self) -> Result<Ldap, Unavailable> {
        let Mode::Search {
            bind_dn, password, ..
        } = &self.mode
        else {
            return Err(Unavailable {
                reason: "no LDAP service account configured".into(),
            });
        };
        let mut conn = self.connect().await?;
        let result = conn
            .with_timeout(self.timeout)
            .simple_bind(bind_dn, password.expose())
            .await;
        result
            .and_then(|r| r.success())
            .map_err(|e| self.fail("service account bind", e))?;
        Ok(conn)
    }

    async fn connect(&self) -> Result<Ldap, Unavailable> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let connected = LdapConnAsync::with_settings(settings, &self.config.url).await;
        let (conn, ldap) = connected.map_err(|e| self.fail("connect", e))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    fn member_of_attrs(&self) -> Vec<String> {
        match self.config.member_of_attribute.as_str() {
            "" => vec!["1.1".into()], // RFC 4511: no attributes
            a => vec![a.to_string()],
        }
    }

    fn member_of(&self, entry: &Entry) -> Vec<String> {
        match self.config.member_of_attribute.as_str() {
            "" => Vec::new(),
            a => entry
                .values(a)
                .filter_map(|dn| first_rdn_value(&dn))
                .collect(),
        }
    }

    /// An `Unavailable` naming the server and what failed.
    fn fail(&self, what: &str, e: LdapError) -> Unavailable {
        let url = &self.config.url;
        let reason = match &e {
            LdapError::Timeout { .. } => format!(
                "LDAP server {url} did not answer within {} s ({what})",
                self.timeout.as_secs()
            ),
            LdapError::Io { source } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("LDAP server {url} refused the connection ({what})")
            }
            LdapError::LdapResult { result } => format!(
                "LDAP server {url}: {what} failed with result code {} {}",
                result.rc, result.text
            ),
            e if connection_lost(e) => {
                format!("LDAP server {url} closed the connection ({what}): {e}")
            }
            e => format!("LDAP server {url}: {what} failed: {e}"),
        };
        // Callers report it (at warn); this is for the details around it.
        tracing::debug!(%reason, "LDAP directory unavailable");
        Unavailable { reason }
    }
}

/// The attribute a user filter compares with the name, e.g. `uid` in
/// `(&(objectClass=person)(uid={username}))`.
fn name_attribute(filter: &str) -> Option<String> {
    let before = &filter[..filter.find("={username}")?];
    let attr = &before[before.rfind('(')? + 1..];
    let ok = !attr.is_empty()
        && attr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
    ok.then(|| attr.to_string())
}

/// A search entry, parsed without trusting the server's bytes (ldap3's
/// `SearchEntry::construct` panics on malformed input).
struct Entry {
    dn: String,
    attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    fn parse(tag: ldap3::asn1::StructureTag) -> Option<Entry> {
        let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attrs = Vec::new();
        for attr in parts.next()?.expect_constructed()? {
            let mut attr = attr.expect_constructed()?.into_iter();
            let name = String::from_utf8(attr.next()?.expect_primitive()?).ok()?;
            let values = attr.next()?.expect_constructed()?.into_iter();
            attrs.push((
                name,
                values
                    .filter_map(|v| String::from_utf8(v.expect_primitive()?).ok())
                    .collect(),
            ));
        }
        Some(Entry { dn, attrs })
    }

    /// The values of an attribute (names compare case-insensitively).
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        let matching = self
            .attrs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name));
        matching.flat_map(|(_, v)| v.iter().cloned())
    }
}

async fn search(
    conn: &mut Ldap,
    timeout: Duration,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<String>,
) -> Result<Vec<Entry>, LdapError> {
    let (raw, _) = conn
        .with_timeout(timeout)
        .search(base, scope, filter, attrs)
        .await?
        .success()?;
    let parsed: Option<Vec<Entry>> = raw.into_iter().map(|r| Entry::parse(r.0)).collect();
    parsed
        .ok_or_else(|| LdapError::AdapterInit("the server sent an unreadable search entry".into()))
}

/// Errors after which the connection is gone (not a slow server or a refusal).
fn connection_lost(e: &LdapError) -> bool {
    use LdapError::*;
    matches!(
        e,
        Io { .. } | OpSend { .. } | ResultRecv { .. } | IdScrubSend { .. } | EndOfStream
    )
}

fn bad_username(user: &str) -> Option<&'static str> {
    match user {
        "" => Some("empty"),
        u if u.len() > MAX_USERNAME => Some("longer than 256 bytes"),
        u if u.chars().any(char::is_control) => Some("control characters"),
        _ => None,
    }
}

/// Replaces each `{placeholder}` in one pass, so a value that contains a
/// placeholder is never expanded again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        match values.iter().find(|(k, _)| rest.starts_with(k)) {
            Some((k, v)) => (out.push_str(v), rest = &rest[k.len()..]),
            None => (out.push(c), rest = &rest[c.len_utf8()..]),
        };
    }
    out
}

/// `cn=team-a,ou=groups,dc=example,dc=org` -> `team-a`, with RFC 4514
/// escapes (`\,`, `\2C`) decoded.
fn first_rdn_value(dn: &str) -> Option<String> {
    let (_, value) = dn.split_once('=')?;
    let bytes = value.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while let Some(&b) = bytes.get(i) {
        let hex = (bytes.get(i + 1..i + 3))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b, hex) {
            (b',' | b'+', _) => break,
            (b'\\', Some(h)) => (out.push(h), i += 3),
            (b'\\', None) => (out.push(*bytes.get(i + 1)?), i += 2),
            (b, _) => (out.push(b), i += 1),
        };
    }
    let value = String::from_utf8(out).ok()?;
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

fn read_password_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read ldap.bind_password_file {shown}: {e}"))?;
    match text.trim() {
        "" => Err(format!("ldap.bind_password_file {shown} is empty")),
        pw => Ok(Secret::new(pw)),
    }
}

/// A TLS client config trusting exactly the certificates in `ca_file`.
fn tls_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
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

#[cfg(test)]
mod name_tests {
    use super::name_attribute;

    #[test]
    fn finds_the_attribute_compared_with_the_name() {
        assert_eq!(name_attribute("(uid={username})").as_deref(), Some("uid"));
        assert_eq!(
            name_attribute("(&(objectClass=inetOrgPerson)(sAMAccountName={username}))").as_deref(),
            Some("sAMAccountName")
        );
        assert_eq!(name_attribute("(cn=*)"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_rdn_value_of_member_of() {
        assert_eq!(
            first_rdn_value("cn=team-a,ou=groups,dc=example,dc=org").as_deref(),
            Some("team-a")
        );
        assert_eq!(
            first_rdn_value("CN=Dev\\, Ops,OU=x").as_deref(),
            Some("Dev, Ops")
        );
        assert_eq!(
            first_rdn_value("cn=a\\2Cb+uid=1,dc=x").as_deref(),
            Some("a,b")
        );
        assert_eq!(
            first_rdn_value("cn=caf\\C3\\A9,dc=x").as_deref(),
            Some("café")
        );
        assert_eq!(first_rdn_value("no-equals-sign"), None);
        assert_eq!(first_rdn_value("cn=,dc=x"), None);
        assert_eq!(first_rdn_value("cn=bad\\"), None);
    }

    #[test]
    fn placeholders_filled_once_and_escaped() {
        let f = fill(
            "(|(member={dn})(memberUid={username}))",
            &[("{dn}", "{username}"), ("{username}", "bob")],
        );
        assert_eq!(f, "(|(member={username})(memberUid=bob))");
        let user = ldap_escape("alice)(uid=*");
        assert_eq!(
            fill("(uid={username})", &[("{username}", &user)]),
            "(uid=alice\\29\\28uid=\\2a)"
        );
        assert_eq!(
            fill("uid={username},dc=x", &[("{username}", &dn_escape("a,b"))]),
            "uid=a\\2cb,dc=x"
        );
    }

    #[test]
    fn unusable_usernames() {
        assert!(bad_username("alice").is_none() && bad_username("o'brien").is_none());
        for bad in ["", "a\nb", "a\0b", &"x".repeat(257)] {
            assert!(bad_username(bad).is_some(), "{bad:?}");
        }
    }
}
