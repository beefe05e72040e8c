//! Manifests: every media type's lifecycle, validation, size limits, tags
//! and unknown manifests.

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

async fn docker_foreign_layers_need_not_be_pushed(p: Proto) {
    // Windows base images reference layers served from elsewhere.
    let s = Server::start(p).await;
    let config = br#"{"architecture":"amd64","os":"windows"}"#;
    s.push_blob("win/app", config).await;
    let bytes = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, config),
        "layers": [{
            "mediaType": DOCKER_FOREIGN_LAYER,
            "digest": sha256(b"windows base layer"),
            "size": 123_456_789,
            "urls": ["https://mcr.microsoft.com/v2/windows/blobs/x"]
        }],
    }));
    s.push_manifest("win/app", "ltsc", DOCKER_MANIFEST, &bytes)
        .await;
}

async fn manifest_referencing_missing_content_is_blob_unknown(p: Proto) {
    let s = Server::start(p).await;
    let config = to_bytes(&json!({"os": "linux"}));
    let layer = data(300, 25);
    s.push_blob("miss/app", &config).await;

    // Missing layer.
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": [desc(OCI_LAYER, &layer)],
    }));
    s.put_manifest("miss/app", "v1", OCI_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");

    // Missing config (Docker schema2).
    s.push_blob("miss/app", &layer).await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, b"{\"never\":\"pushed\"}"),
        "layers": [desc(DOCKER_LAYER, &layer)],
    }));
    s.put_manifest("miss/app", "v1", DOCKER_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");

    // Blobs that exist only in another repository.
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": [desc(OCI_LAYER, &layer)],
    }));
    s.put_manifest("miss/other", "v1", OCI_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    s.push_manifest("miss/app", "v1", OCI_MANIFEST, &m).await;

    // Index and list children that are missing (or in another repository).
    for (media_type, child_type) in [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)] {
        for (repo, child) in [
            ("miss/app", sha256(b"no such manifest")),
            ("miss/other", sha256(&m)),
        ] {
            let index = to_bytes(&json!({
                "schemaVersion": 2, "mediaType": media_type,
                "manifests": [{ "mediaType": child_type, "digest": child, "size": 100 }],
            }));
            s.put_manifest(repo, "multi", media_type, &index)
                .await
                .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
        }
    }
    // Nothing was tagged by the failed pushes.
    assert_eq!(s.tags("miss/app").await, ["v1"]);
}

async fn invalid_manifests_are_manifest_invalid(p: Proto) {
    let s = Server::start(p).await;
    s.push_blob("bad/app", b"{}").await;
    let schema1 = json!({
        "schemaVersion": 1,
        "name": "bad/app",
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{ "blobSum": EMPTY_DIGEST }],
        "history": [{ "v1Compatibility": "{}" }],
        "signatures": [{ "header": {}, "signature": "x", "protected": "y" }]
    });
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (OCI_MANIFEST, b"this is not json".to_vec()),
        (OCI_MANIFEST, b"{\"schemaVersion\": 2,".to_vec()),
        (OCI_MANIFEST, Vec::new()),
        (DOCKER_SCHEMA1_SIGNED, to_bytes(&schema1)),
        (
            "application/vnd.docker.distribution.manifest.v1+json",
            to_bytes(&json!({"schemaVersion": 1, "name": "bad/app", "fsLayers": []})),
        ),
    ];
    for (ct, body) in cases {
        s.put_manifest("bad/app", "v1", ct, &body)
            .await
            .expect_error(400, "MANIFEST_INVALID");
    }
    s.get("/v2/bad/app/manifests/v1")
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

async fn manifest_digest_reference_mismatch_is_digest_invalid(p: Proto) {
    let s = Server::start(p).await;
    s.push_blob("mis/app", b"{}").await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    let other = sha256(b"different bytes");
    s.put_manifest("mis/app", &other, OCI_MANIFEST, &m)
        .await
        .expect_error(400, "DIGEST_INVALID");
    s.get(&format!("/v2/mis/app/manifests/{other}"))
        .send()
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

async fn manifest_over_4_mib_is_413(p: Proto) {
    let s = Server::start(p).await;
    // With Content-Length: refused from the header alone.
    let r = s
        .raw(
            &format!(
                "PUT /v2/large/app/manifests/v1 HTTP/1.1\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n",
                MANIFEST_LIMIT + 1
            ),
            RawBody::None,
        )
        .await;
    r.expect_error(413, "SIZE_INVALID");

    // With a chunked body of unknown length.
    let r = s
        .raw(
            &format!(
                "PUT /v2/large/app/manifests/v1 HTTP/1.1\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n"
            ),
            RawBody::Chunked {
                chunk: vec![b' '; 64 * 1024],
                count: MANIFEST_LIMIT / (64 * 1024) + 1,
            },
        )
        .await;
    r.expect_error(413, "SIZE_INVALID");
    s.get("/v2/").send().await.expect(200);
}

async fn manifest_of_exactly_4_mib_is_accepted(p: Proto) {
    let s = Server::start(p).await;
    s.push_blob("edge/app", b"{}").await;
    let doc = |pad: usize| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
            "layers": [],
            "annotations": { "padding": "a".repeat(pad) },
        }))
        .unwrap()
    };
    let bytes = doc(MANIFEST_LIMIT - doc(0).len());
    assert_eq!(bytes.len(), MANIFEST_LIMIT);
    s.push_manifest("edge/app", "big", OCI_MANIFEST, &bytes)
        .await;
    let r = s.get("/v2/edge/app/manifests/big").send().await;
    r.expect(200);
    assert!(r.body == bytes);
}

async fn invalid_tags_are_manifest_unknown(p: Proto) {
    let s = Server::start(p).await;
    s.push_blob("tag/app", b"{}").await;
    let m = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
    }));
    let long = "a".repeat(129);
    // The spec's endpoint table lists only 404 here; Distribution's router
    // answers 404 for every method (the route does not match).
    for tag in [
        "-bad",
        ".bad",
        ".INVALID_MANIFEST_NAME",
        long.as_str(),
        "a%2Fb",
        "t%C3%A4g",
        "a%20b",
    ] {
        let path = format!("/v2/tag/app/manifests/{tag}");
        s.put_manifest("tag/app", tag, OCI_MANIFEST, &m)
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        s.get(&path)
            .send()
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        s.head(&path).send().await.expect_head_error(404);
        s.delete(&path)
            .send()
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
    // The longest valid tag is fine.
    let longest = "a".repeat(128);
    s.push_manifest("tag/app", &longest, OCI_MANIFEST, &m).await;
    s.push_manifest("tag/app", "_v1.0-rc.1_X", OCI_MANIFEST, &m)
        .await;
}

async fn unknown_manifests(p: Proto) {
    let s = Server::start(p).await;
    s.push_image("known/app", "v1", OCI_MANIFEST, 26).await;
    let unknown_digest = sha256(b"no such manifest");
    for reference in ["nope", unknown_digest.as_str()] {
        let path = format!("/v2/known/app/manifests/{reference}");
        s.expect_unknown(&path, "MANIFEST_UNKNOWN").await;
    }
    for reference in ["latest", unknown_digest.as_str()] {
        let path = format!("/v2/unknown/app/manifests/{reference}");
        s.get(&path).send().await.expect_error(404, "NAME_UNKNOWN");
        s.head(&path).send().await.expect_head_error(404);
        let r = s.delete(&path).send().await;
        r.expect(404);
        let code = r.error_code().unwrap();
        assert!(
            code == "NAME_UNKNOWN" || code == "MANIFEST_UNKNOWN",
            "DELETE {path}: {code}"
        );
    }
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
    docker_foreign_layers_need_not_be_pushed,
    manifest_referencing_missing_content_is_blob_unknown,
    invalid_manifests_are_manifest_invalid,
    manifest_digest_reference_mismatch_is_digest_invalid,
    manifest_over_4_mib_is_413,
    manifest_of_exactly_4_mib_is_accepted,
    invalid_tags_are_manifest_unknown,
    unknown_manifests,
);
