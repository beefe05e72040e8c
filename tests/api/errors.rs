//! Names and methods (`NAME_INVALID`, 405 with `Allow`, HEAD wherever GET
//! is) and hostile input: every answer a 4xx OCI error, the server survives.

use super::*;

async fn invalid_names_are_name_invalid(p: Proto) {
    let s = Server::start(p).await;
    let long = "a".repeat(256);
    let d = sha256(b"x");
    let paths = [
        "/v2/Upper/tags/list".to_string(),
        "/v2/team/App/manifests/latest".to_string(),
        "/v2/a%2Fb/tags/list".to_string(),
        "/v2/a%2fb/manifests/latest".to_string(),
        "/v2/a//b/tags/list".to_string(),
        "/v2/library//manifests/latest".to_string(),
        "/v2//tags/list".to_string(),
        format!("/v2/{long}/tags/list"),
        "/v2/-a/tags/list".to_string(),
        "/v2/a-/tags/list".to_string(),
        "/v2/a___b/tags/list".to_string(),
        "/v2/a%20b/tags/list".to_string(),
        format!("/v2/UP/blobs/{d}"),
        "/v2/UP/blobs/uploads/".to_string(),
        format!("/v2/UP/referrers/{d}"),
    ];
    for p in &paths {
        s.get(p).send().await.expect_error(400, "NAME_INVALID");
    }
    s.post("/v2/UP/blobs/uploads/")
        .send()
        .await
        .expect_error(400, "NAME_INVALID");
    // `..` and `.` segments, sent as-is (a URL library would resolve them).
    for p in [
        "/v2/team-a/../team-b/tags/list",
        "/v2/a/./b/tags/list",
        "/v2/a/%2e%2e/b/tags/list",
        "/v2/../v2/x/tags/list",
    ] {
        s.raw(&format!("GET {p} HTTP/1.1\r\n"), RawBody::None)
            .await
            .expect_error(400, "NAME_INVALID");
    }
    // A trailing slash after a valid path matches no endpoint.
    s.get("/v2/library/tags/list/")
        .send()
        .await
        .expect_error(404, "UNSUPPORTED");
    // Valid names, 255 characters and multi-level, are only unknown.
    let max = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    for name in [
        max.as_str(),
        "devops/monitoring/prometheus",
        "a.b_c__d---e/f0",
    ] {
        s.get(&format!("/v2/{name}/tags/list"))
            .send()
            .await
            .expect_error(404, "NAME_UNKNOWN");
    }
}

async fn names_may_contain_endpoint_words(p: Proto) {
    let s = Server::start(p).await;
    for repo in ["tags/list", "blobs/uploads", "manifests/referrers/blobs"] {
        let image = s.push_image(repo, "v1", OCI_MANIFEST, 50).await;
        let r = s.get(&format!("/v2/{repo}/manifests/v1")).send().await;
        assert!(r.expect(200).body == image.bytes);
        assert_eq!(s.tags(repo).await, ["v1"]);
    }
}

async fn method_not_allowed_is_405_unsupported(p: Proto) {
    let s = Server::start(p).await;
    let d = sha256(b"x");
    let cases = [
        (Method::POST, "/v2/x/tags/list".to_string()),
        (Method::DELETE, "/v2/x/tags/list".to_string()),
        (Method::POST, "/v2/".to_string()),
        (Method::DELETE, "/v2/".to_string()),
        (Method::PUT, "/v2/_catalog".to_string()),
        (Method::PATCH, "/v2/x/manifests/latest".to_string()),
        (Method::POST, "/v2/x/manifests/latest".to_string()),
        (Method::PUT, format!("/v2/x/blobs/{d}")),
        (Method::POST, format!("/v2/x/blobs/{d}")),
        (Method::PUT, "/v2/x/blobs/uploads/".to_string()),
        (Method::DELETE, format!("/v2/x/referrers/{d}")),
        (Method::OPTIONS, "/v2/x/tags/list".to_string()),
        (Method::from_bytes(b"BREW").unwrap(), "/v2/".to_string()),
    ];
    for (m, p) in cases {
        s.request(m, &p)
            .send()
            .await
            .expect_error(405, "UNSUPPORTED");
    }
}

async fn head_is_allowed_wherever_get_is(p: Proto) {
    // RFC 9110 section 9.1: general-purpose servers MUST support HEAD
    // (and section 9.3.2: it answers as GET would, without a body).
    let s = Server::start(p).await;
    let image = s.push_image("head/app", "v1", OCI_MANIFEST, 70).await;
    for path in [
        "/v2/_catalog".to_string(),
        "/v2/head/app/tags/list".to_string(),
        format!("/v2/head/app/referrers/{}", image.digest),
    ] {
        let get = s.get(&path).send().await;
        get.expect(200);
        let r = s.head(&path).send().await;
        r.expect(200);
        assert!(r.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            r.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
}

async fn method_not_allowed_lists_the_allowed_methods(p: Proto) {
    // RFC 9110 section 15.5.6: a 405 MUST carry an `Allow` header.
    let s = Server::start(p).await;
    let r = s.post("/v2/x/tags/list").send().await;
    r.expect(405);
    let allow = r
        .header("allow")
        .unwrap_or_else(|| panic!("405 without Allow"));
    assert!(allow.contains("GET"), "Allow: {allow}");
}

async fn hostile_inputs_get_4xx_oci_errors_and_the_server_survives(p: Proto) {
    let s = Server::start(p).await;
    let repo = "h/app";
    let image = s.push_image(repo, "v1", OCI_MANIFEST, 60).await;
    let blob = data(100, 61);
    let blob_path = format!("/v2/{repo}/blobs/{}", s.push_blob(repo, &blob).await);
    let upload = s.start_upload(repo).await;
    let d = sha256(b"x");

    let mut failures = Vec::new();
    let mut check = |r: Resp| {
        if !(400..500).contains(&r.status) {
            failures.push(format!("{}: status {} {}", r.what, r.status, r.text()));
        } else if let Err(e) = r.error_code() {
            failures.push(format!("{}: status {}: {e}", r.what, r.status));
        }
    };

    // Paths.
    let long = "x/".repeat(2000);
    for p in [
        "/v3/",
        "/v2x",
        "/favicon.ico",
        "/v2/_catalog/extra",
        "/v2/h/app",
        "/v2/h/app/tags",
        "/v2/h/app/tags/list/extra",
        "/v2/h/app/manifests",
        "/v2/%00/tags/list",
        "/v2/a%00b/tags/list",
        "/v2/%E2%98%83/tags/list",
        "/v2/h/app/manifests/%E2%98%83",
        "/v2/h/app/manifests/sha256:%E2%98%83",
        "/v2/h/app/manifests/sha256:",
        "/v2/h/app/manifests/:",
        "/v2/h/app/blobs/sha256:zz",
        "/v2/h/app/blobs/",
        "/v2/h/app/blobs/sha256:%2e%2e%2f%2e%2e",
        "/v2/h/app/referrers/nope",
        "/v2/h/app/blobs/uploads/not-a-uuid",
        "/v2/h/app/blobs/uploads/..%2F..%2Fetc",
        "/v2/h/app/blobs/uploads/00000000-0000-0000-0000-00000000000g",
        "/v2/nope/tags/list?last=%E2%98%83",
        "/v2/_catalog?n=abc",
        "/v2/_catalog?n=-1",
        "/v2/_catalog?n=1e3",
        "/v2/_catalog?n=99999999999999999999999999",
        "/v2/h/app/tags/list?n=abc&n=2",
        "/v2/h/app/tags/list?n=%E2%98%83",
    ] {
        check(s.get(p).send().await);
    }
    check(s.get(&format!("/v2/{long}tags/list")).send().await);

    // Methods.
    for (m, p) in [
        (Method::POST, "/v2/"),
        (Method::PUT, "/v2/"),
        (Method::PATCH, "/v2/"),
        (Method::DELETE, "/v2/_catalog"),
        (Method::OPTIONS, "/v2/"),
        (Method::TRACE, "/v2/h/app/manifests/v1"),
        (
            Method::from_bytes(b"PROPFIND").unwrap(),
            "/v2/h/app/tags/list",
        ),
        (Method::POST, "/v2/h/app/tags/list"),
        (Method::GET, "/v2/h/app/blobs/uploads/"),
    ] {
        check(s.request(m, p).send().await);
    }

    // Large headers, within the server's limits (a 32 KiB request head on
    // HTTP/1.1, as nginx's default 4 x 8 KiB, and the same header list on
    // HTTP/2).
    let big = "a".repeat(28 * 1024);
    check(
        s.get("/v2/nope/tags/list")
            .header("x-junk", &big)
            .send()
            .await,
    );
    let mut c = s.get("/v2/nope/tags/list");
    for i in 0..28 {
        c = c.header(&format!("x-junk-{i}"), &"b".repeat(1000));
    }
    check(c.send().await);
    check(
        s.get("/v2/nope/manifests/v1")
            .header(
                "accept",
                &format!("{OCI_MANIFEST}, {}", "x/y;q=0.1, ".repeat(2000)),
            )
            .send()
            .await,
    );

    // Unsatisfiable Range headers on a blob that exists: 416.
    for range in ["bytes=-0", "bytes=100-"] {
        check(s.get(&blob_path).header("range", range).send().await);
    }
    // Ranges that do not parse are ignored (RFC 9110): the whole blob.
    for range in [
        "bytes=zz",
        "bytes=5-2",
        "bytes=-",
        "bytes=99999999999999999999999-",
    ] {
        let r = s.get(&blob_path).header("range", range).send().await;
        r.expect(200);
        assert!(r.body == blob, "Range: {range}: the whole blob");
    }

    // Bad Content-Range and digests on an upload session.
    for cr in [
        "garbage",
        "0-",
        "-5",
        "a-b",
        "99999999999999999999-1",
        "5-9",
        "bytes 3-1/5",
        "0-2",
    ] {
        check(
            s.patch(&upload)
                .header("content-range", cr)
                .body(b"12345".to_vec())
                .send()
                .await,
        );
    }
    for digest in ["", "sha256:%E2%98%83", "sha256:..%2F..", "nope"] {
        check(
            s.put(&with_query(&upload, "digest", digest))
                .body(b"x".to_vec())
                .send()
                .await,
        );
        check(
            s.post(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
                .body(b"x".to_vec())
                .send()
                .await,
        );
    }
    // Nothing reached the session.
    s.expect_upload_range(&upload, "0-0").await;

    // Manifest bodies: not JSON, the wrong JSON, nested garbage, unicode.
    let deep_array = "[".repeat(100_000);
    let deep_object = "{\"a\":".repeat(50_000);
    let manifests: Vec<(&str, Vec<u8>)> = vec![
        (OCI_MANIFEST, b"".to_vec()),
        (OCI_MANIFEST, b"null".to_vec()),
        (OCI_MANIFEST, b"[]".to_vec()),
        (OCI_MANIFEST, b"\"manifest\"".to_vec()),
        (OCI_MANIFEST, b"{".to_vec()),
        (OCI_MANIFEST, deep_array.into_bytes()),
        (OCI_MANIFEST, deep_object.into_bytes()),
        (OCI_MANIFEST, vec![0xff, 0xfe, 0x00, 0x7b]),
        (OCI_MANIFEST, b"\xef\xbb\xbf{\"schemaVersion\":2}".to_vec()),
        (OCI_MANIFEST, br#"{"schemaVersion":"2"}"#.to_vec()),
        (OCI_MANIFEST, br#"{"schemaVersion":2}"#.to_vec()),
        (OCI_MANIFEST, br#"{"schemaVersion":3,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#.to_vec()),
        ("application/x-unknown", br#"{"schemaVersion":2,"mediaType":"application/x-unknown"}"#.to_vec()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"sha256:zz","size":1}},"layers":[]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":-1}},"layers":[]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1e400}},"layers":[]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":"nope"}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x\u0000","digest":"{d}","size":1}},"layers":[{{"digest":"md5:abc","size":1}}]}}"#).into_bytes()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"☃","digest":"{d}","size":1}},"layers":[],"annotations":{{"ключ":"値 🚀"}}}}"#).into_bytes()),
        (OCI_INDEX, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"sha256:zz","size":1}}]}}"#).into_bytes()),
        (OCI_INDEX, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":{{}}}}"#).into_bytes()),
        (OCI_INDEX, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{{"digest":"nope","size":1}}}}"#).into_bytes()),
        // Content-Type contradicting the manifest's mediaType.
        (DOCKER_MANIFEST, image.bytes.clone()),
    ];
    for (ct, body) in manifests {
        check(s.put_manifest(repo, "hostile", ct, &body).await);
    }
    check(
        s.put(&format!("/v2/{repo}/manifests/{}", sha256(b"other")))
            .header("content-type", OCI_MANIFEST)
            .body(image.bytes.clone())
            .send()
            .await,
    );

    // Raw requests a URL library would not send as-is.
    for p in [
        "/v2/h/../h/app/tags/list",
        "/v2/h/app/../../_catalog/tags/list",
        "/v2/./tags/list",
        "/v2/h/app/blobs/uploads/../../../../etc/passwd",
        "/v2/h/app/manifests/..",
        "/v2/%2e%2e/tags/list",
    ] {
        check(s.raw(&format!("GET {p} HTTP/1.1\r\n"), RawBody::None).await);
    }

    assert!(
        failures.is_empty(),
        "answers that are not 4xx OCI errors:\n{}",
        failures.join("\n")
    );

    // Still serving, and nothing was damaged.
    s.get("/v2/").send().await.expect(200);
    let r = s.get(&format!("/v2/{repo}/manifests/v1")).send().await;
    assert!(r.expect(200).body == image.bytes);
    assert_eq!(s.get(&blob_path).send().await.expect(200).body, blob);
    assert_eq!(s.tags(repo).await, ["v1"]);
}

both_protocols!(
    invalid_names_are_name_invalid,
    names_may_contain_endpoint_words,
    method_not_allowed_is_405_unsupported,
    head_is_allowed_wherever_get_is,
    method_not_allowed_lists_the_allowed_methods,
    hostile_inputs_get_4xx_oci_errors_and_the_server_survives,
);
