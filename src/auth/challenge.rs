//! The `WWW-Authenticate` challenge a 401 carries: Basic, or Docker's
//! `Bearer realm=...,service=...,scope=...` pointing at the token service
//! (a cross-repository mount also asks for pull on its source).

use http::Method;

use super::endpoint::TOKEN_PATH;
use super::{Auth, Challenge, RequestInfo};
use crate::oci::names::RepoName;
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
        info: &RequestInfo<'_>,
        error: Option<&str>,
    ) -> String {
        let origin = info.origin;
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
                // A cross-repository mount also reads the source (as
                // Distribution asks): `repository:B:pull,push repository:A:pull`.
                let scope = scope.map(|s| match mount_source(route, info) {
                    Some(from) => format!("{s} repository:{from}:pull"),
                    None => s,
                });
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

/// The source repository of a cross-repository mount
/// (`POST .../blobs/uploads/?mount=D&from=A`), if this is one.
fn mount_source(route: &Route, info: &RequestInfo<'_>) -> Option<RepoName> {
    if !matches!(route, Route::Uploads(_)) || info.method != Method::POST {
        return None;
    }
    let q = crate::oci::Query::parse(info.query);
    q.get("mount")?;
    q.get("from")?.parse().ok()
}
