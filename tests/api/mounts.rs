//! Cross-repository mounts, and the fallback to an upload session.

use super::*;

async fn mount_from_a_repository_that_has_the_blob(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(1234, 11);
    let d = s.push_blob("src/app", &blob).await;
    let r = s
        .post(&format!(
            "/v2/dst/app/blobs/uploads/?mount={d}&from=src/app"
        ))
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/dst/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    let r = s.get(&r.location()).send().await;
    r.expect(200);
    assert_eq!(r.body, blob);
    // The source still has it.
    s.head(&format!("/v2/src/app/blobs/{d}"))
        .send()
        .await
        .expect(200);
}

async fn mount_falls_back_to_an_upload_session(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(600, 12);
    let d = s.push_blob("src/app", &blob).await;
    let missing = sha256(b"not in src/app");
    for query in [
        format!("mount={missing}&from=src/app"),
        format!("mount={d}&from=no/such/repo"),
        format!("mount={d}&from=Src/App"),
        format!("mount={d}&from=src/../src/app"),
        format!("mount={d}&from="),
        "mount=sha256:zz&from=src/app".to_string(),
        "mount=garbage&from=src/app".to_string(),
    ] {
        let r = s
            .post(&format!("/v2/dst/app/blobs/uploads/?{query}"))
            .send()
            .await;
        r.expect(202);
        let loc = r.location();
        assert!(
            loc.starts_with("/v2/dst/app/blobs/uploads/"),
            "{query}: Location {loc}"
        );
        assert!(r.header("docker-upload-uuid").is_some(), "{query}");
    }
    // The fallback session is a normal one: finish it with the blob.
    let r = s
        .post(&format!(
            "/v2/dst/app/blobs/uploads/?mount={missing}&from=src/app"
        ))
        .send()
        .await;
    r.expect(202);
    s.put(&with_query(&r.location(), "digest", &d))
        .body(blob.clone())
        .send()
        .await
        .expect(201);
    assert_eq!(
        s.get(&format!("/v2/dst/app/blobs/{d}"))
            .send()
            .await
            .expect(200)
            .body,
        blob
    );
}

both_protocols!(
    mount_from_a_repository_that_has_the_blob,
    mount_falls_back_to_an_upload_session,
);
