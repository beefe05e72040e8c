//! Authentication and authorization: turns a routed request into an
//! [`Authorized`] value, the proof the registry requires to answer it.
//!
//! Only this module can make an `Authorized`, so no registry endpoint can be
//! reached without passing through [`Authorizer::authorize`]. Today the one
//! mode is `open` (`serve --no-auth`): every action on every repository.
//! Login (htpasswd, LDAP, tokens) and per-namespace rules plug in here.

use http::Method;

use crate::registry::names::RepoName;
use crate::registry::{Action, RegistryError, Route};

/// Decides what a request may do.
#[derive(Debug, Clone)]
pub struct Authorizer {
    mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No authentication: everything is allowed.
    Open,
}

/// A request that passed authorization: the route, the action it needs,
/// and what else the caller may touch (mount sources, catalog entries).
#[derive(Debug)]
pub struct Authorized {
    route: Route,
    action: Option<Action>,
    mode: Mode,
}

impl Authorizer {
    /// Everything allowed to everyone (`--no-auth`).
    pub fn open() -> Authorizer {
        Authorizer { mode: Mode::Open }
    }

    /// Checks a request. Fails with 405 for a method the route lacks.
    pub fn authorize(&self, method: &Method, route: Route) -> Result<Authorized, RegistryError> {
        let action = route.action(method)?;
        match self.mode {
            Mode::Open => Ok(Authorized {
                route,
                action,
                mode: self.mode,
            }),
        }
    }
}

impl Authorized {
    pub fn route(&self) -> &Route {
        &self.route
    }

    pub fn action(&self) -> Option<Action> {
        self.action
    }

    /// Whether a cross-repository mount may read from `repo`.
    pub fn may_mount_from(&self, _repo: &RepoName) -> bool {
        match self.mode {
            Mode::Open => true,
        }
    }

    /// Whether `repo` may appear in this caller's catalog.
    pub fn may_list(&self, _repo: &RepoName) -> bool {
        match self.mode {
            Mode::Open => true,
        }
    }
}
