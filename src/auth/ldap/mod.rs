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

mod config;
mod conn;
mod entry;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::{dn_escape, ldap_escape, Ldap, LdapError, Scope};

use super::identity::{Identity, Source, Unavailable, Verdict};
use super::secret::Secret;
pub use config::LdapConfig;
use config::{read_password_file, tls_config};
use entry::{bad_username, fill, first_rdn_value, name_attribute, Entry};

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
}
