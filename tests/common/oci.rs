//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/`):
//! writing test images (a multi-arch index for linux/amd64 + linux/arm/v6, or
//! a single manifest), and comparing two layouts blob by blob. `skopeo copy
//! oci:DIR:TAG docker://...` pushes them to a registry.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::images::{gzip_stored, random_bytes, sha256_hex, tar_archive};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image written into an OCI layout by this module.
#[derive(Debug, Clone)]
pub struct OciImage {
    pub dir: PathBuf,
    pub tag: String,
    /// Digest of the top-level manifest (the index for multi-arch images).
    pub digest: String,
    pub media_type: String,
    /// The top-level manifest's exact bytes.
    pub manifest: Vec<u8>,
    /// ("linux/amd64" or "linux/arm/v6", manifest digest) per platform.
    pub platforms: Vec<(String, String)>,
    /// Every blob digest the image references, including `digest`.
    pub blobs: Vec<String>,
}

impl OciImage {
    /// The `oci:DIR:TAG` transport reference for skopeo.
    pub fn skopeo_ref(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }
}

/// Writes a multi-arch image: an OCI index with linux/amd64 and linux/arm/v6
/// manifests, each with a config and two gzip layers of `layer_size` random
/// bytes.
pub fn write_oci_multiarch(dir: &Path, tag: &str, layer_size: usize) -> OciImage {
    let mut blobs = Vec::new();
    let mut entries = Vec::new();
    let mut platforms = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm", Some("v6"))] {
        let (desc, image_blobs) = write_platform_manifest(dir, arch, variant, layer_size);
        blobs.extend(image_blobs);
        let mut platform = json!({"architecture": arch, "os": "linux"});
        let mut name = format!("linux/{arch}");
        if let Some(v) = variant {
            platform["variant"] = json!(v);
            name = format!("{name}/{v}");
        }
        platforms.push((
            name,
            desc["digest"].as_str().unwrap_or_default().to_string(),
        ));
        let mut entry = desc;
        entry["platform"] = platform;
        entries.push(entry);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    });
    let bytes = serde_json::to_vec_pretty(&index).expect("serialize index");
    let desc = put_blob(dir, OCI_INDEX, &bytes);
    blobs.push(desc["digest"].as_str().unwrap_or_default().to_string());
    write_layout(dir, tag, desc.clone());
    OciImage {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        digest: desc["digest"].as_str().unwrap_or_default().to_string(),
        media_type: OCI_INDEX.to_string(),
        manifest: bytes,
        platforms,
        blobs,
    }
}

/// Writes a single-platform (linux/amd64) image: one OCI manifest, a config
/// and two gzip layers of `layer_size` random bytes.
pub fn write_oci_single(dir: &Path, tag: &str, layer_size: usize) -> OciImage {
    let (desc, blobs) = write_platform_manifest(dir, "amd64", None, layer_size);
    let digest = desc["digest"].as_str().unwrap_or_default().to_string();
    write_layout(dir, tag, desc);
    OciImage {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        manifest: read_blob(dir, &digest),
        digest: digest.clone(),
        media_type: OCI_MANIFEST.to_string(),
        platforms: vec![("linux/amd64".to_string(), digest)],
        blobs,
    }
}

/// Writes config + layers + manifest; returns the manifest's descriptor and
/// all blob digests (manifest last).
fn write_platform_manifest(
    dir: &Path,
    arch: &str,
    variant: Option<&str>,
    layer_size: usize,
) -> (Value, Vec<String>) {
    let label = format!("{arch}{}", variant.unwrap_or(""));
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..2 {
        let file = format!("data/{label}-layer{i}.bin");
        let tar = tar_archive(&[("data/", &[]), (&file, &random_bytes(layer_size))]);
        diff_ids.push(format!("sha256:{}", sha256_hex(&tar)));
        layers.push(put_blob(dir, OCI_LAYER_GZIP, &gzip_stored(&tar)));
    }
    let mut config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if let Some(v) = variant {
        config["variant"] = json!(v);
    }
    let config_desc = put_blob(
        dir,
        OCI_CONFIG,
        &serde_json::to_vec(&config).expect("serialize config"),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    });
    let manifest_desc = put_blob(
        dir,
        OCI_MANIFEST,
        &serde_json::to_vec_pretty(&manifest).expect("serialize manifest"),
    );
    let blobs = layers
        .iter()
        .chain([&config_desc, &manifest_desc])
        .map(|d| d["digest"].as_str().unwrap_or_default().to_string())
        .collect();
    (manifest_desc, blobs)
}

/// Stores a blob under blobs/sha256 and returns its descriptor.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let hex = sha256_hex(bytes);
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).expect("create blobs/sha256");
    fs::write(blob_dir.join(&hex), bytes).expect("write blob");
    json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

fn write_layout(dir: &Path, tag: &str, mut desc: Value) {
    desc["annotations"] = json!({ REF_NAME: tag });
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("serialize index.json"),
    )
    .expect("write index.json");
}

fn read_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("unsupported digest {digest}"));
    let path = dir.join("blobs").join("sha256").join(hex);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read blob {}: {e}", path.display()));
    assert_eq!(
        sha256_hex(&bytes),
        hex,
        "blob {} does not match its digest",
        path.display()
    );
    bytes
}

/// The (digest, media type) that `tag` names in the layout's index.json.
pub fn read_oci_ref(dir: &Path, tag: &str) -> (String, String) {
    let path = dir.join("index.json");
    let text = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let index: Value = serde_json::from_slice(&text).expect("index.json is JSON");
    let found = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["annotations"][REF_NAME].as_str() == Some(tag))
        .unwrap_or_else(|| panic!("tag {tag} not in {}: {index}", path.display()));
    (
        found["digest"].as_str().unwrap_or_default().to_string(),
        found["mediaType"].as_str().unwrap_or_default().to_string(),
    )
}

/// Every blob reachable from `tag` (manifests, configs, layers), keyed by
/// digest, each checked against its digest.
pub fn oci_reachable_blobs(dir: &Path, tag: &str) -> BTreeMap<String, Vec<u8>> {
    let (digest, media_type) = read_oci_ref(dir, tag);
    let mut blobs = BTreeMap::new();
    visit(dir, &digest, &media_type, &mut blobs, 0);
    blobs
}

fn visit(
    dir: &Path,
    digest: &str,
    media_type: &str,
    blobs: &mut BTreeMap<String, Vec<u8>>,
    depth: usize,
) {
    assert!(depth < 4, "manifest nesting too deep at {digest}");
    if blobs.contains_key(digest) {
        return;
    }
    let bytes = read_blob(dir, digest);
    let parsed: Option<Value> = match media_type {
        OCI_INDEX | DOCKER_LIST | OCI_MANIFEST | DOCKER_MANIFEST => {
            Some(serde_json::from_slice(&bytes).expect("manifest is JSON"))
        }
        _ => None,
    };
    blobs.insert(digest.to_string(), bytes);
    let Some(doc) = parsed else { return };
    let children: Vec<&Value> = if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        doc["manifests"].as_array().into_iter().flatten().collect()
    } else {
        std::iter::once(&doc["config"])
            .chain(doc["layers"].as_array().into_iter().flatten())
            .collect()
    };
    for child in children {
        let child_digest = child["digest"].as_str().expect("descriptor digest");
        let child_type = child["mediaType"].as_str().unwrap_or_default();
        visit(dir, child_digest, child_type, blobs, depth + 1);
    }
}

/// Panics unless `tag` in layout `a` and `b_tag` in layout `b` name the same
/// top-level digest and reach exactly the same blobs with identical bytes.
/// Returns the number of blobs compared.
pub fn assert_same_oci_image(a: &Path, a_tag: &str, b: &Path, b_tag: &str) -> usize {
    let (a_digest, a_type) = read_oci_ref(a, a_tag);
    let (b_digest, b_type) = read_oci_ref(b, b_tag);
    assert_eq!(
        a_digest, b_digest,
        "top-level manifest digests differ ({a_type} vs {b_type})"
    );
    let a_blobs = oci_reachable_blobs(a, a_tag);
    let b_blobs = oci_reachable_blobs(b, b_tag);
    let a_keys: Vec<&String> = a_blobs.keys().collect();
    let b_keys: Vec<&String> = b_blobs.keys().collect();
    assert_eq!(a_keys, b_keys, "the two images reference different blobs");
    for (digest, bytes) in &a_blobs {
        assert!(bytes == &b_blobs[digest], "blob {digest} differs");
    }
    a_blobs.len()
}
