//! Unit tests of manifest parsing and shape checks.

use super::*;

#[test]
fn media_type_from_shape() {
    let idx = ManifestDoc::parse(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    assert_eq!(idx.effective_media_type(), OCI_INDEX);
    let m = ManifestDoc::parse(
        br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"d","size":1},"layers":[]}"#,
    )
    .unwrap();
    assert_eq!(m.effective_media_type(), OCI_MANIFEST);
    assert_eq!(m.artifact_type(), Some("x"));
}

#[test]
fn shape_validation() {
    let doc = ManifestDoc::parse(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
    )
    .unwrap();
    assert!(validate_shape(&doc, None).is_err());
    let doc = ManifestDoc::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#).unwrap();
    assert!(validate_shape(&doc, None).is_err());
    let doc =
        ManifestDoc::parse(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#)
            .unwrap();
    assert!(validate_shape(&doc, Some(OCI_INDEX)).is_ok());
    assert!(validate_shape(&doc, Some(DOCKER_MANIFEST)).is_err());
    assert!(validate_shape(&doc, Some("application/json")).is_ok());
}
