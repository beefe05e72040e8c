//! The `WWW-Authenticate` challenge a 401 carries: Basic, or Docker's
//! `Bearer realm=...,service=...,scope=...` pointing at the token service.

use super::endpoint::TOKEN_PATH;
use super::{Auth, Challenge};
use crate::oci::{Action, Route};

impl Auth {
    pub(super) fn realm(&self, origin: &str) -> String {
        self.realm
            .clone()
            .unwrap_or_else(|| format!("{origin}{TOKEN_PATH}"))
    }

    /// The `WWW-Authenticate` value for a route.
    pub(super) fn challenge_for(
        &self,
        route: &Route,
        action: Option<Action>,
        origin: &str,
        error: Option<&str>,
    ) -> String {
        match self.challenge {
            Challenge::Basic => "Basic realm=\"regproxy\", charset=\"UTF-8\"".to_string(),
            Challenge::Token => {
                let mut c = format!(
                    "Bearer realm=\"{}\",service=\"{}\"",
                    self.realm(origin),
                    self.tokens.service
                );
                let scope = match (route, action) {
                    (Route::Catalog, _) => Some("registry:catalog:*".to_string()),
                    (r, Some(a)) => r.repo().map(|repo| {
                        let actions = if a == Action::Push {
                            "pull,push"
                        } else {
                            a.as_str()
                        };
                        format!("repository:{repo}:{actions}")
                    }),
                    _ => None,
                };
                if let Some(s) = scope {
                    c.push_str(&format!(",scope=\"{s}\""));
                }
                if let Some(e) = error {
                    c.push_str(&format!(",error=\"{e}\""));
                }
                c
            }
        }
    }
}
