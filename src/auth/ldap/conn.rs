//! Connections to the directory: connect (plain, LDAPS or StartTLS, with
//! timeouts), the pool of bound service-account connections, searches on
//! it, and what a failure means for the client ([`Unavailable`]).

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope};

use super::entry::Entry;
use super::{LdapBackend, Mode};
use crate::auth::identity::Unavailable;

impl LdapBackend {
    /// A search on `on`, or else on a pooled service-account connection (a
    /// pooled connection the server closed meanwhile is replaced once).
    pub(super) async fn search(
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

    pub(super) async fn service_connection(&self) -> Result<Ldap, Unavailable> {
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

    pub(super) async fn connect(&self) -> Result<Ldap, Unavailable> {
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

    /// An `Unavailable` naming the server and what failed.
    pub(super) fn fail(&self, what: &str, e: LdapError) -> Unavailable {
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

pub(super) async fn search(
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
pub(super) fn connection_lost(e: &LdapError) -> bool {
    use LdapError::*;
    matches!(
        e,
        Io { .. } | OpSend { .. } | ResultRecv { .. } | IdScrubSend { .. } | EndOfStream
    )
}
