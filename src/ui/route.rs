//! The UI's paths, parsed once into a [`Page`]: repository names and
//! references are the protocol's types, so a page never sees a raw string
//! where a name belongs.
//!
//! `/ui/repo/<name>` is a repository; `/-/` separates the name from what
//! follows (`-` is never a name component): `/ui/repo/<name>/-/manifest/<ref>`
//! and `/ui/repo/<name>/-/delete/<ref>`.

use crate::oci::names::{Reference, RepoName};

/// A UI page (for `GET`; some also take `POST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/ui/`: the repositories the user may pull, `?q=` to search.
    Catalog,
    /// `/ui/login`
    Login,
    /// `/ui/logout` (`POST`)
    Logout,
    /// `/ui/repo/<name>`
    Repo(RepoName),
    /// `/ui/repo/<name>/-/manifest/<reference>`
    Manifest(RepoName, Reference),
    /// `/ui/repo/<name>/-/delete/<reference>`: confirm (`GET`) and do (`POST`).
    Delete(RepoName, Reference),
    /// `/ui/gc`: garbage collection (admins).
    Gc,
    /// `/ui/connect`: trust the CA and log in from a machine.
    Connect,
    /// `/ui/assets/<file>`
    Asset(&'static str),
    /// Anything else under `/ui/`.
    NotFound,
}

/// The embedded files the pages use (no inline script or style, so the
/// Content-Security-Policy can forbid them).
pub const ASSETS: [(&str, &str, &str); 2] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/ui.js"),
    ),
];

impl Page {
    pub fn parse(path: &str) -> Page {
        let Some(rest) = path.strip_prefix("/ui") else {
            return Page::NotFound;
        };
        match rest {
            "" | "/" => return Page::Catalog,
            "/login" => return Page::Login,
            "/logout" => return Page::Logout,
            "/gc" => return Page::Gc,
            "/connect" => return Page::Connect,
            _ => {}
        }
        if let Some(file) = rest.strip_prefix("/assets/") {
            return ASSETS
                .iter()
                .find(|(name, _, _)| *name == file)
                .map_or(Page::NotFound, |(name, _, _)| Page::Asset(name));
        }
        let Some(repo_path) = rest.strip_prefix("/repo/") else {
            return Page::NotFound;
        };
        let (name, tail) = match repo_path.split_once("/-/") {
            Some((n, t)) => (n, Some(t)),
            None => (repo_path.trim_end_matches('/'), None),
        };
        let Ok(repo) = name.parse::<RepoName>() else {
            return Page::NotFound;
        };
        let reference = |r: &str| r.parse::<Reference>().ok();
        match tail.map(|t| t.split_once('/')) {
            None => Page::Repo(repo),
            Some(Some(("manifest", r))) => {
                reference(r).map_or(Page::NotFound, |r| Page::Manifest(repo, r))
            }
            Some(Some(("delete", r))) => {
                reference(r).map_or(Page::NotFound, |r| Page::Delete(repo, r))
            }
            Some(_) => Page::NotFound,
        }
    }
}

/// The path of a repository page.
pub fn repo_path(repo: &str) -> String {
    format!("/ui/repo/{repo}")
}

/// The path of a manifest page (`reference`: a tag or a digest).
pub fn manifest_path(repo: &str, reference: &str) -> String {
    format!("/ui/repo/{repo}/-/manifest/{reference}")
}

/// The path of a delete confirmation.
pub fn delete_path(repo: &str, reference: &str) -> String {
    format!("/ui/repo/{repo}/-/delete/{reference}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(Page::parse("/ui"), Page::Catalog);
        assert_eq!(Page::parse("/ui/"), Page::Catalog);
        assert_eq!(
            Page::parse("/ui/assets/style.css"),
            Page::Asset("style.css")
        );
        assert_eq!(Page::parse("/ui/assets/../x"), Page::NotFound);
        let repo: RepoName = "team-a/app".parse().unwrap();
        assert_eq!(Page::parse("/ui/repo/team-a/app"), Page::Repo(repo.clone()));
        assert_eq!(
            Page::parse("/ui/repo/team-a/app/-/manifest/1.0"),
            Page::Manifest(repo.clone(), "1.0".parse().unwrap())
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            Page::parse(&format!("/ui/repo/team-a/app/-/delete/{d}")),
            Page::Delete(repo, d.parse().unwrap())
        );
        for bad in [
            "/ui/repo/Team/app",
            "/ui/repo/a/-/manifest/",
            "/ui/repo/a/-/x/1",
            "/ui/nope",
        ] {
            assert_eq!(Page::parse(bad), Page::NotFound, "{bad}");
        }
    }
}
