//! The object keys: CNCF Distribution's layout (the same paths as the
//! filesystem backend, see `fs`), under `<prefix>/docker/registry/v2/`, so
//! `aws s3 sync` or `rclone` copies a data directory into a bucket and back.
//!
//! Only uploads in progress differ: `_uploads/<uuid>/startedat` as on disk,
//! but the data is one object per request body (`data/`, `chunks/`,
//! `writing/` below the upload's folder, see `chunks`), because an object
//! cannot be appended to. A finished blob is always `blobs/.../data`.

use object_store::path::Path;

use crate::oci::digest::Digest;
use crate::oci::names::{RepoName, UploadId};

/// Key builder for one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `<prefix>/docker/registry/v2` (no trailing `/`).
    root: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        let root = if prefix.is_empty() {
            "docker/registry/v2".to_string()
        } else {
            format!("{prefix}/docker/registry/v2")
        };
        Keys { root }
    }

    fn path(&self, rest: &str) -> Path {
        Path::from(format!("{}/{rest}", self.root))
    }

    /// The part of `key` after the root and `under/`, if it is below it.
    pub(super) fn relative<'a>(&self, key: &'a str, under: &Path) -> Option<&'a str> {
        key.strip_prefix(under.as_ref())?.strip_prefix('/')
    }

    pub(super) fn blobs(&self) -> Path {
        self.path("blobs")
    }

    pub(super) fn blob_data(&self, d: &Digest) -> Path {
        let hex = d.hex();
        let alg = d.algorithm().as_str();
        self.path(&format!(
            "blobs/{alg}/{}/{hex}/data",
            &hex[..2.min(hex.len())]
        ))
    }

    pub(super) fn repositories(&self) -> Path {
        self.path("repositories")
    }

    pub(super) fn repo(&self, r: &RepoName) -> Path {
        self.path(&format!("repositories/{r}"))
    }

    pub(super) fn in_repo(&self, r: &RepoName, rest: &str) -> Path {
        self.path(&format!("repositories/{r}/{rest}"))
    }

    pub(super) fn layers(&self, r: &RepoName) -> Path {
        self.in_repo(r, "_layers")
    }

    pub(super) fn layer_link(&self, r: &RepoName, d: &Digest) -> Path {
        self.in_repo(r, &format!("_layers/{}/link", alg_hex(d)))
    }

    pub(super) fn revisions(&self, r: &RepoName) -> Path {
        self.in_repo(r, "_manifests/revisions")
    }

    pub(super) fn revision_dir(&self, r: &RepoName, d: &Digest) -> Path {
        self.in_repo(r, &format!("_manifests/revisions/{}", alg_hex(d)))
    }

    pub(super) fn revision_link(&self, r: &RepoName, d: &Digest) -> Path {
        self.in_repo(r, &format!("_manifests/revisions/{}/link", alg_hex(d)))
    }

    pub(super) fn tags(&self, r: &RepoName) -> Path {
        self.in_repo(r, "_manifests/tags")
    }

    pub(super) fn tag_dir(&self, r: &RepoName, tag: &str) -> Path {
        self.in_repo(r, &format!("_manifests/tags/{tag}"))
    }

    pub(super) fn tag_current(&self, r: &RepoName, tag: &str) -> Path {
        self.in_repo(r, &format!("_manifests/tags/{tag}/current/link"))
    }

    pub(super) fn tag_index(&self, r: &RepoName, tag: &str, d: &Digest) -> Path {
        self.in_repo(
            r,
            &format!("_manifests/tags/{tag}/index/{}/link", alg_hex(d)),
        )
    }

    pub(super) fn upload_dir(&self, r: &RepoName, id: UploadId) -> Path {
        self.in_repo(r, &format!("_uploads/{id}"))
    }

    pub(super) fn upload_started(&self, r: &RepoName, id: UploadId) -> Path {
        self.in_repo(r, &format!("_uploads/{id}/startedat"))
    }

    pub(super) fn referrers(&self, r: &RepoName, subject: &Digest) -> Path {
        self.in_repo(r, &format!("_referrers/{}", alg_hex(subject)))
    }

    pub(super) fn referrer_dir(&self, r: &RepoName, subject: &Digest, d: &Digest) -> Path {
        self.in_repo(
            r,
            &format!("_referrers/{}/{}", alg_hex(subject), alg_hex(d)),
        )
    }

    /// Ours, beside `blobs/` and `repositories/` (Distribution ignores
    /// it): one claim per instance, see `lease`.
    pub(super) fn gc_leases(&self) -> Path {
        self.path("_regproxy/gc-leases")
    }

    /// A short-lived object whose `last_modified` is the store's clock.
    pub(super) fn clock(&self, id: &str) -> Path {
        self.path(&format!("_regproxy/clock/{id}"))
    }

    pub(super) fn probe(&self) -> Path {
        self.path("_regproxy/probe")
    }
}

fn alg_hex(d: &Digest) -> String {
    format!("{}/{}", d.algorithm().as_str(), d.hex())
}

/// `<alg>/<hex>/link` (as below `_layers/` or `revisions/`) as a digest.
pub(super) fn digest_of_link(rel: &str) -> Option<Digest> {
    let mut parts = rel.split('/');
    let (alg, hex, link) = (parts.next()?, parts.next()?, parts.next()?);
    if link != "link" || parts.next().is_some() {
        return None;
    }
    format!("{alg}:{hex}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_distribution_layout_under_the_prefix() {
        let d = Digest::sha256_of(b"x");
        let r: RepoName = "team/app".parse().unwrap();
        let k = Keys::new("reg/prod");
        assert_eq!(
            k.blob_data(&d).as_ref(),
            format!(
                "reg/prod/docker/registry/v2/blobs/sha256/{}/{}/data",
                &d.hex()[..2],
                d.hex()
            )
        );
        assert_eq!(
            k.tag_current(&r, "v1").as_ref(),
            "reg/prod/docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link"
        );
        let k = Keys::new("");
        let link = k.layer_link(&r, &d);
        assert!(link
            .as_ref()
            .starts_with("docker/registry/v2/repositories/team/app/_layers/"));
        let rel = k.relative(link.as_ref(), &k.layers(&r)).unwrap();
        assert_eq!(digest_of_link(rel), Some(d));
    }
}
