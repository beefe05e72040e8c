//! Manifests: every media type's lifecycle (push, get, head, tag, delete),
//! documents without `mediaType`, `Content-Type` parameters, retagging.

use super::*;

/// PUT / GET / HEAD / DELETE of one manifest by tag and by digest.
async fn check_manifest_lifecycle(s: &Server, repo: &str, media_type: &str, bytes: &[u8]) {
    let d = sha256(bytes);
    let len = bytes.len().to_string();

    let r = s.put_manifest(repo, "v1", media_type, bytes).await;
    r.expect(201)
        .expect_header("location", &format!("/v2/{repo}/manifests/{d}"))
        .expect_header("docker-content-digest", &d);
    let location = r.location();

    for reference in ["v1", d.as_str()] {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = s.get(&path).header("accept", media_type).send().await;
        r.expect(200)
            .expect_header("content-type", media_type)
            .expect_header("docker-content-digest", &d)
            .expect_header("content-length", &len);
        assert!(r.body == bytes, "{path}: stored bytes differ");
        let r = s.head(&path).header("accept", media_type).send().await;
        r.expect(200)
            .expect_header("content-type", media_type)
            .expect_header("docker-content-digest", &d)
            .expect_header("content-length", &len);
        assert!(r.body.is_empty());
    }
    assert!(s.get(&location).send().await.expect(200).body == bytes);

    // PUT by digest.
    let r = s.put_manifest(repo, &d, media_type, bytes).await;
    r.expect(201)
        .expect_header("location", &format!("/v2/{repo}/manifests/{d}"))
        .expect_header("docker-content-digest", &d);

    // DELETE by tag removes only the tag.
    let tag_path = format!("/v2/{repo}/manifests/v1");
    let digest_path = format!("/v2/{repo}/manifests/{d}");
    s.delete(&tag_path).send().await.expect(202);
    s.get(&tag_path)
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.head(&tag_path).send().await.expect_head_error(404);
    s.get(&digest_path).send().await.expect(200);
    assert!(!s.tags(repo).await.contains(&"v1".to_string()));

    // DELETE by digest removes the manifest and every tag on it.
    s.push_manifest(repo, "v1", media_type, bytes).await;
    s.push_manifest(repo, "v2", media_type, bytes).await;
    assert_eq!(s.tags(repo).await, ["v1", "v2"]);
    s.delete(&digest_path).send().await.expect(202);
    s.get(&digest_path)
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.head(&digest_path).send().await.expect_head_error(404);
    for tag in ["v1", "v2"] {
        s.get(&format!("/v2/{repo}/manifests/{tag}"))
            .send()
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
    assert_eq!(s.tags(repo).await, Vec::<String>::new());
    s.delete(&digest_path)
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

/// Pushes two platform images of `image_type`; returns the bytes of an
/// index or list (`index_type`) over them, not pushed.
async fn push_platform_images(
    s: &Server,
    repo: &str,
    image_type: &str,
    index_type: &str,
) -> Vec<u8> {
    let amd64 = s.push_image(repo, "", image_type, 20).await;
    let armv6 = s.push_image(repo, "", image_type, 21).await;
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [
            {
                "mediaType": image_type,
                "digest": amd64.digest,
                "size": amd64.bytes.len(),
                "platform": { "architecture": "amd64", "os": "linux" }
            },
            {
                "mediaType": image_type,
                "digest": armv6.digest,
                "size": armv6.bytes.len(),
                "platform": { "architecture": "arm", "os": "linux", "variant": "v6" }
            }
        ],
    }))
}

async fn docker_schema2_manifest_lifecycle(p: Proto) {
    let s = Server::start(p).await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = data(4000, 13);
    s.push_blob("docker/app", config).await;
    s.push_blob("docker/app", &layer).await;
    // Hand-formatted: the registry must return these exact bytes.
    let bytes = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{DOCKER_MANIFEST}\",\n   \"config\": {{\"mediaType\": \"{DOCKER_CONFIG}\", \"size\": {}, \"digest\": \"{}\"}},\n   \"layers\": [\n      {{\"mediaType\": \"{DOCKER_LAYER}\", \"size\": {}, \"digest\": \"{}\"}}\n   ]\n}}",
        config.len(),
        sha256(config),
        layer.len(),
        sha256(&layer)
    );
    check_manifest_lifecycle(&s, "docker/app", DOCKER_MANIFEST, bytes.as_bytes()).await;
}

async fn docker_manifest_list_lifecycle(p: Proto) {
    let s = Server::start(p).await;
    let bytes = push_platform_images(&s, "docker/multi", DOCKER_MANIFEST, DOCKER_LIST).await;
    check_manifest_lifecycle(&s, "docker/multi", DOCKER_LIST, &bytes).await;
}

async fn oci_image_manifest_lifecycle(p: Proto) {
    let s = Server::start(p).await;
    let config = to_bytes(&json!({"architecture": "arm64", "os": "linux"}));
    let layers = [data(100, 14), data(200, 15)];
    s.push_blob("oci/app", &config).await;
    for l in &layers {
        s.push_blob("oci/app", l).await;
    }
    let bytes = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": [desc(OCI_LAYER, &layers[0]), desc(OCI_LAYER, &layers[1])],
        "annotations": { "org.opencontainers.image.title": "ünïcødé ✓" },
    }));
    check_manifest_lifecycle(&s, "oci/app", OCI_MANIFEST, &bytes).await;
}

async fn oci_image_index_lifecycle(p: Proto) {
    let s = Server::start(p).await;
    let bytes = push_platform_images(&s, "oci/multi", OCI_MANIFEST, OCI_INDEX).await;
    check_manifest_lifecycle(&s, "oci/multi", OCI_INDEX, &bytes).await;
}

async fn oci_artifact_with_empty_config_lifecycle(p: Proto) {
    let s = Server::start(p).await;
    assert_eq!(sha256(b"{}"), EMPTY_DIGEST);
    s.push_blob("oci/artifact", b"{}").await;
    let payload = br#"{"spdxVersion":"SPDX-2.3"}"#;
    s.push_blob("oci/artifact", payload).await;
    let bytes = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30=" },
        "layers": [desc("application/spdx+json", payload)],
        "annotations": { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
    }));
    check_manifest_lifecycle(&s, "oci/artifact", OCI_MANIFEST, &bytes).await;
}

async fn manifest_without_media_type_field(p: Proto) {
    // `mediaType` is only a SHOULD in the image spec; such manifests are
    // served with the type they were pushed as.
    let s = Server::start(p).await;
    let child = s.push_image("nomt/app", "", OCI_MANIFEST, 22).await;
    let index = to_bytes(&json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.bytes.len() }],
    }));
    s.push_manifest("nomt/app", "idx", OCI_INDEX, &index).await;
    let r = s.get("/v2/nomt/app/manifests/idx").send().await;
    r.expect(200).expect_header("content-type", OCI_INDEX);
    assert_eq!(r.body, index);

    s.push_blob("nomt/app", b"{}").await;
    let image = to_bytes(&json!({
        "schemaVersion": 2,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    s.push_manifest("nomt/app", "img", OCI_MANIFEST, &image)
        .await;
    s.get("/v2/nomt/app/manifests/img")
        .send()
        .await
        .expect(200)
        .expect_header("content-type", OCI_MANIFEST);
}

async fn content_type_parameters_are_ignored(p: Proto) {
    // "The registry SHOULD ignore parameters on the Content-Type header."
    let s = Server::start(p).await;
    s.push_blob("ctp/app", b"{}").await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    s.push_manifest(
        "ctp/app",
        "v1",
        &format!("{OCI_MANIFEST}; charset=utf-8"),
        &m,
    )
    .await;
    s.get("/v2/ctp/app/manifests/v1")
        .send()
        .await
        .expect(200)
        .expect_header("content-type", OCI_MANIFEST);
}

async fn retagging_moves_the_tag(p: Proto) {
    let s = Server::start(p).await;
    let one = s.push_image("retag/app", "latest", OCI_MANIFEST, 23).await;
    let two = s.push_image("retag/app", "latest", OCI_MANIFEST, 24).await;
    assert_ne!(one.digest, two.digest);
    let r = s.get("/v2/retag/app/manifests/latest").send().await;
    r.expect(200)
        .expect_header("docker-content-digest", &two.digest);
    // The first manifest is still there by digest.
    s.get(&format!("/v2/retag/app/manifests/{}", one.digest))
        .send()
        .await
        .expect(200);
    assert_eq!(s.tags("retag/app").await, ["latest"]);
}

both_protocols!(
    docker_schema2_manifest_lifecycle,
    docker_manifest_list_lifecycle,
    oci_image_manifest_lifecycle,
    oci_image_index_lifecycle,
    oci_artifact_with_empty_config_lifecycle,
    manifest_without_media_type_field,
    content_type_parameters_are_ignored,
    retagging_moves_the_tag,
);
