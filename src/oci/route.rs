//! Parsing a request path into a typed [`Route`], and the action each
//! method on it needs.
//!
//! This is the only place that looks at the raw path. Names, references,
//! digests and upload ids come out typed, so percent-escapes, `..`, `//`,
//! trailing slashes and upper case never get past it.

use http::Method;

use super::digest::Digest;
use super::error::OciError;
use super::names::{NameError, Reference, RepoName, UploadId};

/// An endpoint of the distribution API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    Uploads(RepoName),
    /// `/v2/<name>/blobs/uploads/<uuid>`
    Upload(RepoName, UploadId),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

/// What a request does to a repository, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

fn name(segments: &[&str]) -> Result<RepoName, OciError> {
    segments
        .join("/")
        .parse()
        .map_err(|e: NameError| OciError::NameInvalid(e.to_string()))
}

fn digest(s: &str) -> Result<Digest, OciError> {
    s.parse()
        .map_err(|e: super::digest::DigestError| OciError::DigestInvalid(e.to_string()))
}

impl Route {
    /// Parses the path of a request (without the query).
    pub fn parse(path: &str) -> Result<Route, OciError> {
        let rest = match path {
            "/v2" | "/v2/" => return Ok(Route::Base),
            _ => path.strip_prefix("/v2/").ok_or(OciError::NotFound)?,
        };
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        let seg: Vec<&str> = rest.split('/').collect();
        let n = seg.len();
        // Matched from the right: the name may itself contain `blobs`,
        // `manifests` and so on as components.
        if n >= 3 && seg[n - 2] == "tags" && seg[n - 1] == "list" {
            return Ok(Route::Tags(name(&seg[..n - 2])?));
        }
        if n >= 2 && seg[n - 2] == "manifests" {
            let repo = name(&seg[..n - 2])?;
            let reference = seg[n - 1].parse().map_err(|e: NameError| {
                if seg[n - 1].contains(':') {
                    OciError::DigestInvalid("manifest reference is not a valid digest".into())
                } else {
                    OciError::TagInvalid(e.to_string())
                }
            })?;
            return Ok(Route::Manifest(repo, reference));
        }
        if n >= 2 && seg[n - 2] == "referrers" {
            return Ok(Route::Referrers(name(&seg[..n - 2])?, digest(seg[n - 1])?));
        }
        if n >= 3 && seg[n - 3] == "blobs" && seg[n - 2] == "uploads" {
            let repo = name(&seg[..n - 3])?;
            if seg[n - 1].is_empty() {
                return Ok(Route::Uploads(repo));
            }
            let id = seg[n - 1]
                .parse()
                .map_err(|_| OciError::BlobUploadUnknown)?;
            return Ok(Route::Upload(repo, id));
        }
        if n >= 2 && seg[n - 2] == "blobs" {
            let repo = name(&seg[..n - 2])?;
            if seg[n - 1] == "uploads" {
                return Ok(Route::Uploads(repo));
            }
            return Ok(Route::Blob(repo, digest(seg[n - 1])?));
        }
        Err(OciError::NotFound)
    }

    /// The repository this route is about, if any.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(r)
            | Route::Manifest(r, _)
            | Route::Blob(r, _)
            | Route::Uploads(r)
            | Route::Upload(r, _)
            | Route::Referrers(r, _) => Some(r),
        }
    }

    /// The methods this route answers, for the `Allow` header.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Route::Base | Route::Catalog | Route::Tags(_) | Route::Referrers(..) => "GET, HEAD",
            Route::Manifest(..) => "GET, HEAD, PUT, DELETE",
            Route::Blob(..) => "GET, HEAD, DELETE",
            Route::Uploads(_) => "POST",
            Route::Upload(..) => "GET, HEAD, PATCH, PUT, DELETE",
        }
    }

    /// The action `method` needs on this route's repository (`None` for
    /// routes about no repository), or 405 for a method the route lacks.
    pub fn action(&self, method: &Method) -> Result<Option<Action>, OciError> {
        let read = method == Method::GET || method == Method::HEAD;
        let action = match self {
            Route::Base if read => None,
            Route::Catalog | Route::Tags(_) | Route::Referrers(..) if read => Some(Action::Pull),
            Route::Manifest(..) | Route::Blob(..) if read => Some(Action::Pull),
            Route::Manifest(..) | Route::Blob(..) if method == Method::DELETE => {
                Some(Action::Delete)
            }
            Route::Manifest(..) if method == Method::PUT => Some(Action::Push),
            Route::Uploads(_) if method == Method::POST => Some(Action::Push),
            Route::Upload(..)
                if read || [Method::PATCH, Method::PUT, Method::DELETE].contains(method) =>
            {
                Some(Action::Push)
            }
            _ => {
                return Err(OciError::MethodNotAllowed {
                    method: method.clone(),
                    allow: self.allowed_methods(),
                })
            }
        };
        Ok(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> String {
        format!("sha256:{}", "c".repeat(64))
    }

    #[test]
    fn parses_every_endpoint() {
        let r: RepoName = "devops/monitoring/prometheus".parse().unwrap();
        assert_eq!(Route::parse("/v2/").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2/_catalog").unwrap(), Route::Catalog);
        assert_eq!(
            Route::parse("/v2/devops/monitoring/prometheus/tags/list").unwrap(),
            Route::Tags(r.clone())
        );
        assert!(matches!(
            Route::parse("/v2/devops/monitoring/prometheus/manifests/latest").unwrap(),
            Route::Manifest(_, Reference::Tag(_))
        ));
        assert!(matches!(
            Route::parse(&format!("/v2/a/manifests/{}", d())).unwrap(),
            Route::Manifest(_, Reference::Digest(_))
        ));
        assert!(matches!(
            Route::parse(&format!("/v2/a/blobs/{}", d())).unwrap(),
            Route::Blob(..)
        ));
        assert!(matches!(
            Route::parse("/v2/a/blobs/uploads/").unwrap(),
            Route::Uploads(_)
        ));
        assert!(matches!(
            Route::parse("/v2/a/blobs/uploads").unwrap(),
            Route::Uploads(_)
        ));
        let id = UploadId::new();
        assert_eq!(
            Route::parse(&format!("/v2/a/blobs/uploads/{id}")).unwrap(),
            Route::Upload("a".parse().unwrap(), id)
        );
        assert!(matches!(
            Route::parse(&format!("/v2/a/referrers/{}", d())).unwrap(),
            Route::Referrers(..)
        ));
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            Route::parse("/v2/blobs/manifests/manifests/v1").unwrap(),
            Route::Manifest("blobs/manifests".parse().unwrap(), "v1".parse().unwrap())
        );
        assert_eq!(
            Route::parse("/v2/tags/list/tags/list").unwrap(),
            Route::Tags("tags/list".parse().unwrap())
        );
    }

    #[test]
    fn hostile_paths_are_client_errors() {
        for p in [
            "/v2/a%2fb/tags/list",
            "/v2/team-a/../team-b/tags/list",
            "/v2/team-a//b/tags/list",
            "/v2/Team/tags/list",
            "/v2//tags/list",
            "/v2/a/./b/manifests/x",
        ] {
            let e = Route::parse(p).unwrap_err();
            assert_eq!(e.code(), "NAME_INVALID", "{p}");
        }
        assert_eq!(
            Route::parse("/v2/a/blobs/sha256:zz").unwrap_err().code(),
            "DIGEST_INVALID"
        );
        assert_eq!(
            Route::parse("/v2/a/manifests/-bad").unwrap_err().code(),
            "MANIFEST_UNKNOWN"
        );
        assert_eq!(
            Route::parse("/v2/a/manifests/.INVALID_MANIFEST_NAME")
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/../../x")
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/nope").unwrap_err().code(),
            "BLOB_UPLOAD_UNKNOWN"
        );
        assert_eq!(Route::parse("/v3/").unwrap_err().status(), 404);
        assert_eq!(Route::parse("/v2/a").unwrap_err().status(), 404);
    }

    #[test]
    fn actions() {
        let m = Route::parse("/v2/a/manifests/x").unwrap();
        assert_eq!(m.action(&Method::GET).unwrap(), Some(Action::Pull));
        assert_eq!(m.action(&Method::PUT).unwrap(), Some(Action::Push));
        assert_eq!(m.action(&Method::DELETE).unwrap(), Some(Action::Delete));
        assert_eq!(m.action(&Method::POST).unwrap_err().status(), 405);
        assert_eq!(Route::Base.action(&Method::GET).unwrap(), None);
    }
}
