//! Manifests refused or edge cases: foreign layers, missing content,
//! invalid documents, digest mismatches, the 4 MiB limit, invalid tags and
//! unknown manifests.

use super::*;

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
    docker_foreign_layers_need_not_be_pushed,
    manifest_referencing_missing_content_is_blob_unknown,
    invalid_manifests_are_manifest_invalid,
    manifest_digest_reference_mismatch_is_digest_invalid,
    manifest_over_4_mib_is_413,
    manifest_of_exactly_4_mib_is_accepted,
    invalid_tags_are_manifest_unknown,
    unknown_manifests,
);
