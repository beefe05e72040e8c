//! Pushing and pulling images with plain HTTP requests, the way Docker does
//! it: for each blob `HEAD` first and upload only when missing (monolithic
//! `POST ?digest=`), then `PUT` the manifest; pulling back checks every
//! byte against its digest. For tests that need many small pushes at once.

use serde_json::json;

use super::http::http_request;
use super::images::{random_bytes, sha256_hex};

pub const RAW_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const RAW_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image made of raw blobs: a config, layers, and its manifest.
#[derive(Debug, Clone)]
pub struct RawImage {
    /// Config first, then the layers.
    pub blobs: Vec<(String, Vec<u8>)>,
    pub manifest: Vec<u8>,
    pub digest: String,
    pub media_type: &'static str,
}

pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

impl RawImage {
    /// An OCI image with the given layers (and a random config), optionally
    /// with a `subject` (an OCI 1.1 referrer).
    pub fn new(layers: Vec<Vec<u8>>, subject: Option<&RawImage>) -> RawImage {
        let config = format!("{{\"n\":\"{}\"}}", sha256_hex(&random_bytes(16))).into_bytes();
        let mut blobs = vec![(digest_of(&config), config)];
        blobs.extend(layers.into_iter().map(|l| (digest_of(&l), l)));
        let desc = |(d, b): &(String, Vec<u8>), mt: &str| json!({"mediaType": mt, "digest": d, "size": b.len()});
        let mut doc = json!({
            "schemaVersion": 2,
            "mediaType": RAW_MANIFEST,
            "config": desc(&blobs[0], CONFIG),
            "layers": blobs[1..].iter().map(|b| desc(b, LAYER)).collect::<Vec<_>>(),
        });
        if let Some(s) = subject {
            doc["artifactType"] = json!("application/vnd.example.sbom");
            doc["subject"] =
                json!({"mediaType": s.media_type, "digest": s.digest, "size": s.manifest.len()});
        }
        let manifest = serde_json::to_vec(&doc).expect("manifest JSON");
        RawImage {
            digest: digest_of(&manifest),
            blobs,
            manifest,
            media_type: RAW_MANIFEST,
        }
    }

    /// An image with `n` random layers of `size` bytes each.
    pub fn random(n: usize, size: usize) -> RawImage {
        RawImage::new((0..n).map(|_| random_bytes(size)).collect(), None)
    }

    /// An OCI index of `children` (which are pushed first, by digest).
    pub fn index(children: &[RawImage]) -> RawImage {
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": RAW_INDEX,
            "manifests": children.iter().map(|c| json!({
                "mediaType": c.media_type, "digest": c.digest, "size": c.manifest.len(),
                "platform": {"architecture": "amd64", "os": "linux"},
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&doc).expect("index JSON");
        RawImage {
            digest: digest_of(&manifest),
            blobs: Vec::new(),
            manifest,
            media_type: RAW_INDEX,
        }
    }

    /// Bytes of the manifest and every blob.
    pub fn bytes(&self) -> u64 {
        (self.manifest.len() + self.blobs.iter().map(|(_, b)| b.len()).sum::<usize>()) as u64
    }
}

/// Uploads a blob unless `HEAD` finds it in `repo`. Returns whether it was
/// uploaded.
pub fn push_blob(url: &str, repo: &str, digest: &str, data: &[u8]) -> bool {
    let head = http_request(
        "HEAD",
        &format!("{url}/v2/{repo}/blobs/{digest}"),
        &[],
        None,
    );
    if head.status == 200 {
        return false;
    }
    assert_eq!(head.status, 404, "HEAD blob {digest} in {repo}");
    let r = http_request(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        Some(data.to_vec()),
    );
    assert_eq!(r.status, 201, "upload {digest} to {repo}: {}", r.text());
    true
}

/// `PUT` a manifest under `reference` (a tag or its digest).
pub fn put_manifest(url: &str, repo: &str, reference: &str, img: &RawImage) {
    let r = http_request(
        "PUT",
        &format!("{url}/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", img.media_type)],
        Some(img.manifest.clone()),
    );
    assert_eq!(
        r.status,
        201,
        "PUT manifest {repo}:{reference}: {}",
        r.text()
    );
}

/// Pushes blobs then the manifest (by `tag`, or by digest when `None`).
pub fn push_image(url: &str, repo: &str, tag: Option<&str>, img: &RawImage) {
    for (d, b) in &img.blobs {
        push_blob(url, repo, d, b);
    }
    put_manifest(url, repo, tag.unwrap_or(&img.digest), img);
}

/// Pulls the manifest (by `reference`) and every blob back, checking each
/// against its digest and the pushed bytes.
pub fn pull_and_verify(url: &str, repo: &str, reference: &str, img: &RawImage) {
    let m = http_request(
        "GET",
        &format!("{url}/v2/{repo}/manifests/{reference}"),
        &[("Accept", &format!("{RAW_MANIFEST}, {RAW_INDEX}"))],
        None,
    );
    assert_eq!(
        m.status,
        200,
        "GET manifest {repo}:{reference}: {}",
        m.text()
    );
    assert_eq!(m.body, img.manifest, "manifest bytes of {repo}:{reference}");
    for (d, b) in &img.blobs {
        let r = http_request("GET", &format!("{url}/v2/{repo}/blobs/{d}"), &[], None);
        assert_eq!(
            r.status,
            200,
            "GET blob {d} of {repo}:{reference}: {}",
            r.text()
        );
        assert_eq!(
            digest_of(&r.body),
            *d,
            "blob {d} of {repo}:{reference} has other content"
        );
        assert_eq!(&r.body, b);
    }
}

/// `DELETE /v2/<repo>/manifests/<reference>`; panics unless it answers 202.
pub fn delete_manifest(url: &str, repo: &str, reference: &str) {
    let r = http_request(
        "DELETE",
        &format!("{url}/v2/{repo}/manifests/{reference}"),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "DELETE {repo}:{reference}: {}", r.text());
}

/// The status of `GET /v2/<repo>/manifests/<reference>`.
pub fn manifest_status(url: &str, repo: &str, reference: &str) -> u16 {
    http_request(
        "GET",
        &format!("{url}/v2/{repo}/manifests/{reference}"),
        &[("Accept", &format!("{RAW_MANIFEST}, {RAW_INDEX}"))],
        None,
    )
    .status
}
