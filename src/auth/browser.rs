//! Logins for the web UI: sign-in through the same backends, failure
//! limiter and audit log as every other login; the session that follows;
//! and the [`Authorized`] proof for a session's request, decided by the
//! same rules ([`Policy::decide`]) as an API request's.

use std::net::IpAddr;

use http::Method;

use super::acl::Subject;
use super::error::Why;
use super::identity::{Credentials, Identity, Source};
use super::secret::Secret;
use super::session::{Session, Started, SESSION_TTL};
use super::{AuthError, Authorized, Authorizer};
use crate::oci::names::RepoName;
use crate::oci::{Action, OciError, Route};

impl Authorizer {
    /// Checks a user name and password from the sign-in form and starts a
    /// session. Without logins (`--no-auth`) every sign-in is anonymous.
    pub async fn sign_in(
        &self,
        user: &str,
        password: Secret,
        peer: IpAddr,
    ) -> Result<Started, AuthError> {
        let Some(auth) = &self.auth else {
            return Ok(self.start_anonymous());
        };
        let creds = Credentials {
            user: user.to_string(),
            password,
        };
        let identity = auth.authenticate(&creds, peer).await?;
        let ttl = auth.refresh_lifetime(&identity).min(SESSION_TTL);
        tracing::info!(
            target: "regproxy::audit",
            event = "ui_sign_in",
            %peer,
            user = %identity.user,
            "signed in to the web UI"
        );
        Ok(self.sessions.start(identity, false, ttl))
    }

    /// A session for a server without logins, so its forms carry a CSRF
    /// token too; `None` when logins are on.
    pub fn anonymous_session(&self) -> Option<Started> {
        self.auth.is_none().then(|| self.start_anonymous())
    }

    fn start_anonymous(&self) -> Started {
        let nobody = Identity {
            user: String::new(),
            groups: Vec::new(),
            source: Source::Anonymous,
            version: None,
        };
        self.sessions.start(nobody, true, SESSION_TTL)
    }

    /// The live session behind a cookie value, with its user as their
    /// backend has them now. `Ok(None)`: no such session, expired, or its
    /// user was removed or changed (the session is then ended).
    pub async fn session(&self, cookie_value: &str) -> Result<Option<Session>, AuthError> {
        let Some(mut session) = self.sessions.get(cookie_value) else {
            return Ok(None);
        };
        let Some(auth) = &self.auth else {
            return Ok(Some(session));
        };
        if session.anonymous {
            self.sessions.end(cookie_value);
            return Ok(None);
        }
        match auth.recheck(&session.identity).await {
            Ok(now) => {
                if now != session.identity {
                    self.sessions.update(cookie_value, now.clone());
                    session.identity = now;
                }
                Ok(Some(session))
            }
            Err(AuthError::Unauthorized { .. }) => {
                self.sessions.end(cookie_value);
                tracing::info!(
                    target: "regproxy::audit",
                    event = "ui_session_ended",
                    user = %session.identity.user,
                    "web UI session ended: the user was removed or changed"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Ends a session (sign-out).
    pub fn sign_out(&self, cookie_value: &str) {
        if self.sessions.end(cookie_value) {
            tracing::info!(target: "regproxy::audit", event = "ui_sign_out", "signed out of the web UI");
        }
    }

    /// Whether a session may do `action` on `repo`, to decide which
    /// buttons a page shows (the action itself is authorized again).
    pub fn session_may(&self, session: &Session, repo: &RepoName, action: Action) -> bool {
        (self.policy())
            .decide(&self.subject_of_session(session), repo, action)
            .allowed
    }

    /// Whether a session's user may do everything (garbage collection).
    pub fn is_admin(&self, session: &Session) -> bool {
        self.policy().is_admin(&self.subject_of_session(session))
    }

    /// The proof that a session may make `route` with `method`, decided by
    /// the rules as for an API request. A refusal to pull is
    /// [`OciError::NameUnknown`] (a repository one may not see is one that
    /// does not exist); a refusal of another action is
    /// [`AuthError::Denied`].
    pub fn authorize_session(
        &self,
        route: Route,
        method: &Method,
        session: &Session,
        peer: IpAddr,
    ) -> Result<Authorized, AuthError> {
        let action = route.action(method).map_err(AuthError::Route)?;
        let policy = self.policy();
        let subject = self.subject_of_session(session);
        if self.auth.is_some() && subject.user.is_none() {
            return Err(AuthError::unauthorized(Why::NoCredentials));
        }
        let allowed = match (&route, action) {
            (_, None) | (Route::Catalog, _) => true,
            (r, Some(act)) => match r.repo() {
                Some(repo) => policy.decide(&subject, repo, act).allowed,
                None => false,
            },
        };
        if !allowed {
            tracing::info!(
                target: "regproxy::audit",
                event = "denied",
                %peer,
                user = subject.user.as_deref().unwrap_or(""),
                repository = route.repo().map(|r| r.as_str()).unwrap_or(""),
                action = action.map(Action::as_str).unwrap_or(""),
                "web UI request denied by the access rules"
            );
            return Err(match action {
                Some(Action::Pull) | None => AuthError::Route(OciError::NameUnknown),
                Some(a) => AuthError::Denied {
                    repo: route.repo().map(|n| n.to_string()).unwrap_or_default(),
                    action: a.as_str(),
                    user: subject.user.clone().unwrap_or_default(),
                },
            });
        }
        Ok(Authorized {
            route,
            action,
            subject,
            policy,
            token: None,
        })
    }

    fn subject_of_session(&self, session: &Session) -> Subject {
        if session.anonymous {
            return Subject::anonymous();
        }
        let mut groups = session.identity.groups.clone();
        groups.extend(self.policy().groups_of(&session.identity.user));
        Subject {
            user: Some(session.identity.user.clone()),
            groups,
        }
    }
}
