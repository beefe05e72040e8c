//! The `subject` field (`OCI-Subject`) and the referrers API.

use super::*;

/// An artifact manifest referring to `subject`.
fn artifact(subject: &Value, artifact_type: &str, payload: &[u8], annotations: Value) -> Vec<u8> {
    to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": { "mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [desc("application/octet-stream", payload)],
        "subject": subject,
        "annotations": annotations,
    }))
}

async fn manifest_with_subject_answers_oci_subject(p: Proto) {
    let s = Server::start(p).await;
    s.push_blob("subj/app", b"{}").await;
    s.push_blob("subj/app", b"sig").await;
    // The subject need not exist.
    let subject = json!({ "mediaType": OCI_MANIFEST, "digest": sha256(b"absent"), "size": 6 });
    let bytes = artifact(&subject, "application/vnd.example.sig", b"sig", json!({}));
    let d = sha256(&bytes);
    let r = s.put_manifest("subj/app", &d, OCI_MANIFEST, &bytes).await;
    r.expect(201)
        .expect_header("oci-subject", &sha256(b"absent"))
        .expect_header("docker-content-digest", &d);
    // Without a subject, no OCI-Subject.
    let plain = s.push_image("subj/app", "v1", OCI_MANIFEST, 27).await;
    s.put_manifest("subj/app", "v1", OCI_MANIFEST, &plain.bytes)
        .await
        .expect(201)
        .expect_no_header("oci-subject");
}

async fn referrers_api(p: Proto) {
    let s = Server::start(p).await;
    let repo = "ref/app";
    let image = s.push_image(repo, "v1", OCI_MANIFEST, 28).await;
    let subject =
        json!({ "mediaType": OCI_MANIFEST, "digest": image.digest, "size": image.bytes.len() });
    s.push_blob(repo, b"{}").await;
    s.push_blob(repo, b"sbom").await;
    s.push_blob(repo, b"signature").await;

    let sbom_ann = json!({
        "org.opencontainers.image.created": "2024-01-01T14:42:55Z",
        "org.example.sbom.format": "json"
    });
    let sbom = artifact(
        &subject,
        "application/vnd.example.sbom.v1",
        b"sbom",
        sbom_ann.clone(),
    );
    let sig_ann = json!({ "org.example.signature.fingerprint": "abcd" });
    let sig = artifact(
        &subject,
        "application/vnd.example.signature.v1",
        b"signature",
        sig_ann.clone(),
    );
    // No artifactType: the config's media type stands in for it.
    let config_type = "application/vnd.example.config.v1+json";
    let config = br#"{"kind":"attestation"}"#;
    s.push_blob(repo, config).await;
    let attestation = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(config_type, config),
        "layers": [],
        "subject": subject,
    }));
    // An index referrer without artifactType: no artifactType in its descriptor.
    let index_ann = json!({ "org.opencontainers.image.created": "2023-01-01T07:21:33Z" });
    let index = to_bytes(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [],
        "subject": subject,
        "annotations": index_ann,
    }));
    for (bytes, media_type) in [
        (&sbom, OCI_MANIFEST),
        (&sig, OCI_MANIFEST),
        (&attestation, OCI_MANIFEST),
        (&index, OCI_INDEX),
    ] {
        s.put_manifest(repo, &sha256(bytes), media_type, bytes)
            .await
            .expect(201)
            .expect_header("oci-subject", &image.digest);
    }

    let path = format!("/v2/{repo}/referrers/{}", image.digest);
    let r = s.get(&path).send().await;
    r.expect(200)
        .expect_header("content-type", OCI_INDEX)
        .expect_no_header("oci-filters-applied");
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{v}");
    let find = |bytes: &[u8]| -> Value {
        let d = sha256(bytes);
        list.iter()
            .find(|m| m["digest"] == d.as_str())
            .unwrap_or_else(|| panic!("{d} not among the referrers: {v}"))
            .clone()
    };
    let check = |m: Value,
                 media_type: &str,
                 bytes: &[u8],
                 artifact_type: Option<&str>,
                 ann: Option<&Value>| {
        assert_eq!(m["mediaType"], media_type, "{m}");
        assert_eq!(m["size"], bytes.len(), "{m}");
        match artifact_type {
            Some(t) => assert_eq!(m["artifactType"], t, "{m}"),
            None => assert!(m.get("artifactType").is_none(), "{m}"),
        }
        match ann {
            Some(a) => assert_eq!(&m["annotations"], a, "{m}"),
            None => assert!(
                m.get("annotations")
                    .is_none_or(|a| a.as_object().is_some_and(|o| o.is_empty())),
                "{m}"
            ),
        }
    };
    check(
        find(&sbom),
        OCI_MANIFEST,
        &sbom,
        Some("application/vnd.example.sbom.v1"),
        Some(&sbom_ann),
    );
    check(
        find(&sig),
        OCI_MANIFEST,
        &sig,
        Some("application/vnd.example.signature.v1"),
        Some(&sig_ann),
    );
    check(
        find(&attestation),
        OCI_MANIFEST,
        &attestation,
        Some(config_type),
        None,
    );
    check(find(&index), OCI_INDEX, &index, None, Some(&index_ann));

    // Filtering by artifactType (`+` percent-encoded, as clients do).
    for (filter, expected) in [
        ("application/vnd.example.sbom.v1", vec![sha256(&sbom)]),
        (
            "application/vnd.example.config.v1%2Bjson",
            vec![sha256(&attestation)],
        ),
        ("application/vnd.example.unknown", vec![]),
    ] {
        let r = s.get(&format!("{path}?artifactType={filter}")).send().await;
        r.expect(200)
            .expect_header("content-type", OCI_INDEX)
            .expect_header("oci-filters-applied", "artifactType");
        let got: Vec<String> = r.json()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "filter {filter}");
    }

    // A manifest without referrers: an empty index, not a 404.
    let r = s
        .get(&format!("/v2/{repo}/referrers/{}", sha256(&sbom)))
        .send()
        .await;
    r.expect(200).expect_header("content-type", OCI_INDEX);
    assert_eq!(r.json()["manifests"], json!([]));

    // Deleting a referrer removes it from the list.
    s.delete(&format!("/v2/{repo}/manifests/{}", sha256(&sbom)))
        .send()
        .await
        .expect(202);
    let v = s.get(&path).send().await.expect(200).json();
    let digests: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 3, "{v}");
    assert!(!digests.contains(&sha256(&sbom).as_str()), "{v}");

    // Referrers of a subject that was never pushed.
    let absent = json!({ "mediaType": OCI_MANIFEST, "digest": sha256(b"later"), "size": 5 });
    let early = artifact(
        &absent,
        "application/vnd.example.sbom.v1",
        b"sbom",
        json!({}),
    );
    s.push_manifest(repo, &sha256(&early), OCI_MANIFEST, &early)
        .await;
    let v = s
        .get(&format!("/v2/{repo}/referrers/{}", sha256(b"later")))
        .send()
        .await
        .expect(200)
        .json();
    assert_eq!(v["manifests"][0]["digest"], sha256(&early), "{v}");

    // A malformed digest is 400.
    s.get(&format!("/v2/{repo}/referrers/sha256:nothex"))
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");
}

both_protocols!(manifest_with_subject_answers_oci_subject, referrers_api,);
