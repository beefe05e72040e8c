//! Content and push helpers: deterministic data, digests, descriptors, and
//! pushing blobs, manifests and images.

use super::*;

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

pub fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

/// Deterministic pseudo-random bytes (xorshift).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Appends a query parameter to a `Location` (which may have a query).
pub fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

/// A content descriptor for `bytes`.
pub fn desc(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

pub fn to_bytes(v: &Value) -> Vec<u8> {
    // Pretty-printed with a trailing newline: not the canonical form, so a
    // registry that re-serializes would be caught.
    let mut b = serde_json::to_vec_pretty(v).unwrap();
    b.push(b'\n');
    b
}

/// A manifest as pushed: its exact bytes and digest.
pub struct Pushed {
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Server {
    /// Pushes a blob monolithically (`POST ?digest=`); returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        self.post(&format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect(201);
        d
    }

    /// Starts an upload session; returns its `Location`.
    pub async fn start_upload(&self, repo: &str) -> String {
        let r = self
            .post(&format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await;
        r.expect(202);
        r.location()
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Resp {
        self.put(&format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(bytes)
            .send()
            .await
    }

    /// Pushes a manifest, expecting `201`; returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let r = self.put_manifest(repo, reference, media_type, bytes).await;
        r.expect(201);
        let d = sha256(bytes);
        r.expect_header("docker-content-digest", &d);
        d
    }

    /// Pushes a config and one layer, then an image manifest (Docker
    /// schema2 or OCI, by `media_type`) under `reference`.
    pub async fn push_image(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        seed: u64,
    ) -> Pushed {
        let (config_type, layer_type) = if media_type == DOCKER_MANIFEST {
            (DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (OCI_CONFIG, OCI_LAYER)
        };
        let config = to_bytes(&json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [] },
            "config": { "Labels": { "seed": seed.to_string() } }
        }));
        let layer = data(1000 + seed as usize, seed);
        self.push_blob(repo, &config).await;
        self.push_blob(repo, &layer).await;
        let bytes = to_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": desc(config_type, &config),
            "layers": [desc(layer_type, &layer)],
        }));
        let reference = if reference.is_empty() {
            sha256(&bytes)
        } else {
            reference.to_string()
        };
        let digest = self
            .push_manifest(repo, &reference, media_type, &bytes)
            .await;
        Pushed { bytes, digest }
    }

    /// The tags of a repository (expects `200`).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("/v2/{repo}/tags/list")).send().await;
        r.expect(200);
        let v = r.json();
        assert_eq!(v["name"], repo);
        serde_json::from_value(v["tags"].clone()).unwrap()
    }

    /// The status of an upload session (`GET` on its `Location`): `204`
    /// with `Range: range`.
    pub async fn expect_upload_range(&self, loc: &str, range: &str) -> Resp {
        let r = self.get(loc).send().await;
        r.expect(204).expect_header("range", range);
        r
    }

    /// `GET`, `HEAD` and `DELETE` of `path` are all `404`, with the error
    /// `code` where there is a body.
    pub async fn expect_unknown(&self, path: &str, code: &str) {
        self.get(path).send().await.expect_error(404, code);
        self.head(path).send().await.expect_head_error(404);
        self.delete(path).send().await.expect_error(404, code);
    }
}

/// The target of a `Link: <...>; rel="next"` header.
pub fn next_link(r: &Resp) -> Option<String> {
    let link = r.header("link")?;
    assert!(
        link.ends_with(">; rel=\"next\""),
        "{}: Link {link:?} is not rel=\"next\"",
        r.what
    );
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    Some(link[start..end].to_string())
}

/// Follows `Link` headers from `first`, returning each page's list under
/// `key` (at most 20 pages).
pub async fn pages(s: &Server, first: &str, key: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    for _ in 0..20 {
        let Some(url) = next.take() else {
            return out;
        };
        let r = s.get(&url).send().await;
        r.expect(200);
        out.push(serde_json::from_value(r.json()[key].clone()).unwrap());
        next = next_link(&r);
    }
    panic!("more than 20 pages from {first}");
}
