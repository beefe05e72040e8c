//! LDAP login: checks a username and password against a directory and
//! returns the entry's identity: its stored name (the `uid` the directory
//! matched, whatever case was typed), the groups of that name and DN, and
//! a version of its password (change stamps). [`LdapBackend::look_up`]
//! reads the same identity again without a password, for refresh tokens.
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
pub(crate) use config::{read_password_file, tls_config};
use entry::{bad_username, dn_name_attribute, fill, first_rdn_value, name_attribute, Entry};

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
    /// The attribute holding the user name (`uid`), from the user filter
    /// or the DN template.
    name_attr: Option<String>,
}

/// Operational attributes that change when a password changes (and, for
/// some, on any change of the entry): a refresh token carries a digest of
/// them, so it ends with the password it was issued for. Directories hand
/// out those they have; none at all makes refresh tokens short (see
/// README).
const VERSION_ATTRIBUTES: &[&str] = &[
    "pwdChangedTime",
    "modifyTimestamp",
    "entryCSN",
    "uSNChanged",
    "pwdLastSet",
];

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
        let name_attr = match &mode {
            Mode::Search { .. } => name_attribute(&c.user_filter),
            Mode::Direct { template } => dn_name_attribute(template),
        };
        Ok(LdapBackend {
            config,
            mode,
            tls,
            timeout,
            pool: Mutex::new(Vec::new()),
            name_attr,
        })
    }

    /// Checks `password` for `user`. An accepted login is the entry's
    /// identity: its name as stored (the directory matched `user` by its
    /// own rules, often ignoring case) and the groups of that name and DN.
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
        let identity = match &self.mode {
            Mode::Search { base, .. } => {
                let Some(entry) = self.find_one(base, user).await? else {
                    return Ok(Verdict::UnknownUser);
                };
                let mut conn = self.connect().await?;
                let bound = self.bind(&mut conn, &entry.dn, password).await;
                let _ = conn.with_timeout(self.timeout).unbind().await;
                if !bound? {
                    return Ok(Verdict::Rejected);
                }
                self.identity_of(&entry, user, None).await?
            }
            Mode::Direct { template } => {
                let dn = fill(template, &[("{username}", &dn_escape(user))]);
                let mut conn = self.connect().await?;
                let result = self.direct_login(&mut conn, &dn, user, password).await;
                let _ = conn.with_timeout(self.timeout).unbind().await;
                match result? {
                    Some(identity) => identity,
                    None => return Ok(Verdict::Rejected),
                }
            }
        };
        tracing::debug!(user = %identity.user, groups = ?identity.groups, "LDAP login accepted");
        Ok(Verdict::Accepted(identity))
    }

    /// Whether [`LdapBackend::look_up`] can work: only a service account
    /// can read the directory without the user's password.
    pub fn can_look_up(&self) -> bool {
        matches!(self.mode, Mode::Search { .. })
    }

    /// The identity of the entry whose name is exactly `user` (as stored),
    /// with its groups of now, without a password: for refresh tokens.
    /// `None` if there is no such entry (removed, renamed, ambiguous) or
    /// no service account to look with.
    pub async fn look_up(&self, user: &str) -> Result<Option<Identity>, Unavailable> {
        let Mode::Search { base, .. } = &self.mode else {
            return Ok(None);
        };
        if bad_username(user).is_some() {
            return Ok(None);
        }
        let Some(entry) = self.find_one(base, user).await? else {
            return Ok(None);
        };
        let identity = self.identity_of(&entry, user, None).await?;
        Ok((identity.user == user).then_some(identity))
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

    /// Whether the directory answers, for `/readyz`: in search mode a
    /// base-scope search of the user base with the service account (its
    /// bind included), in direct-bind mode a connection and an anonymous
    /// bind. Each step has the configured timeout.
    pub async fn probe(&self) -> Result<(), Unavailable> {
        match &self.mode {
            Mode::Search { base, .. } => self
                .search(
                    None,
                    "readiness search",
                    base,
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["1.1".into()],
                )
                .await
                .map(|_| ()),
            Mode::Direct { .. } => {
                let mut conn = self.connect().await?;
                let result = conn.with_timeout(self.timeout).simple_bind("", "").await;
                let _ = conn.with_timeout(self.timeout).unbind().await;
                result
                    .map(|_| ())
                    .map_err(|e| self.fail("anonymous bind", e))
            }
        }
    }

    /// The one entry the user filter finds for `user`, with the attributes
    /// an identity is made of; `None` for none or several.
    async fn find_one(&self, base: &str, user: &str) -> Result<Option<Entry>, Unavailable> {
        let mut found = self.find_user(base, user, self.entry_attrs()).await?;
        if found.len() > 1 {
            tracing::warn!(
                user,
                count = found.len(),
                "LDAP user filter matches several entries"
            );
        }
        Ok(if found.len() == 1 { found.pop() } else { None })
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

    /// Binds as `dn`: `false` when the directory refuses the password.
    async fn bind(
        &self,
        conn: &mut Ldap,
        dn: &str,
        password: &Secret,
    ) -> Result<bool, Unavailable> {
        let result = conn
            .with_timeout(self.timeout)
            .simple_bind(dn, password.expose())
            .await;
        match result.map_err(|e| self.fail("bind", e))? {
            r if r.rc == 0 => Ok(true),
            // inappropriateAuthentication, invalidCredentials,
            // insufficientAccessRights, unwillingToPerform (locked, expired)
            r if matches!(r.rc, 48 | 49 | 50 | 53) => {
                tracing::debug!(dn, rc = r.rc, text = %r.text, "LDAP bind refused");
                Ok(false)
            }
            result => Err(self.fail("bind", LdapError::LdapResult { result })),
        }
    }

    /// Direct bind: binds as the user, then reads their own entry with
    /// their own rights (`None`: the password was refused).
    async fn direct_login(
        &self,
        conn: &mut Ldap,
        dn: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Option<Identity>, Unavailable> {
        if !self.bind(conn, dn, password).await? {
            return Ok(None);
        }
        let what = "reading the user's own entry";
        let own = self
            .search(
                Some(conn),
                what,
                dn,
                Scope::Base,
                "(objectClass=*)",
                self.entry_attrs(),
            )
            .await?;
        let Some(entry) = own.first() else {
            // Without the entry there is no canonical name: fail closed.
            return Err(Unavailable {
                reason: format!(
                    "LDAP server {}: {what} returned nothing (the directory must let users read their own entry)",
                    self.config.url
                ),
            });
        };
        self.identity_of(entry, user, Some(conn)).await.map(Some)
    }

    /// The identity an entry stands for: its stored name, the groups of
    /// that name and DN (searched on `on`, else on the service account),
    /// and a version of its password.
    async fn identity_of(
        &self,
        entry: &Entry,
        typed: &str,
        on: Option<&mut Ldap>,
    ) -> Result<Identity, Unavailable> {
        let user = self.stored_name(entry, typed);
        let mut groups = self.member_of(entry);
        if let Some(base) = &self.config.group_base {
            let name = &self.config.group_name_attribute;
            let filter = fill(
                &self.config.group_filter,
                &[
                    ("{dn}", &ldap_escape(&entry.dn)),
                    ("{username}", &ldap_escape(&user)),
                ],
            );
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
        groups.retain(|g| !g.is_empty());
        groups.sort();
        groups.dedup();
        Ok(Identity {
            user,
            groups,
            source: Source::Ldap,
            version: entry.version(VERSION_ATTRIBUTES),
        })
    }

    /// The entry's own spelling of the name (`uid: alice` for a login as
    /// `ALICE`): the value of the name attribute that the directory matched.
    fn stored_name(&self, entry: &Entry, typed: &str) -> String {
        let Some(attr) = &self.name_attr else {
            return typed.to_string();
        };
        let values: Vec<String> = entry.values(attr).collect();
        let lower = typed.to_lowercase();
        match values.as_slice() {
            [only] => only.clone(),
            several => several
                .iter()
                .find(|v| v.as_str() == typed)
                .or_else(|| several.iter().find(|v| v.to_lowercase() == lower))
                .or(several.first())
                .cloned()
                .unwrap_or_else(|| typed.to_string()),
        }
    }

    /// The attributes read from a user's entry.
    fn entry_attrs(&self) -> Vec<String> {
        let mut attrs: Vec<String> = VERSION_ATTRIBUTES.iter().map(|a| a.to_string()).collect();
        attrs.extend(self.name_attr.clone());
        if !self.config.member_of_attribute.is_empty() {
            attrs.push(self.config.member_of_attribute.clone());
        }
        attrs
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
