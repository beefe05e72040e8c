//! Upload errors and edge cases: unknown ids, digest errors, sha512 blobs,
//! `Content-Range`/length mismatches, a large blob in many chunks.

use super::*;

async fn unknown_upload_ids(p: Proto) {
    let s = Server::start(p).await;
    let d = sha256(b"x");
    let unknown = "/v2/up/app/blobs/uploads/0b0e2d42-5b8b-4f5e-9a8b-0123456789ab";
    let malformed = "/v2/up/app/blobs/uploads/not-an-upload-id";
    for path in [unknown, malformed] {
        s.get(path)
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.patch(path)
            .body(b"x".to_vec())
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.put(&with_query(path, "digest", &d))
            .body(b"x".to_vec())
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        s.delete(path)
            .send()
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }

    // A session belongs to the repository it was started in.
    let loc = s.start_upload("up/app").await;
    let foreign = loc.replace("/v2/up/app/", "/v2/up/other/");
    s.get(&foreign)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");

    // A completed session is gone.
    s.put(&with_query(&loc, "digest", &d))
        .body(b"x".to_vec())
        .send()
        .await
        .expect(201);
    s.get(&loc)
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.patch(&loc)
        .body(b"y".to_vec())
        .send()
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

async fn upload_digest_errors(p: Proto) {
    let s = Server::start(p).await;
    let blob = b"the real content".to_vec();
    let wrong = sha256(b"something else");
    let path = format!("/v2/dig/app/blobs/{wrong}");
    // The blob with `?digest=`: in the closing PUT of the session at `loc`,
    // or in a monolithic POST.
    let put = |loc: &str, digest: &str| {
        s.put(&with_query(loc, "digest", digest))
            .body(blob.clone())
            .send()
    };
    let post = |digest: &str| {
        s.post(&format!("/v2/dig/app/blobs/uploads/?digest={digest}"))
            .body(blob.clone())
            .send()
    };

    // Mismatch on the closing PUT; nothing becomes readable.
    let loc = s.start_upload("dig/app").await;
    put(&loc, &wrong).await.expect_error(400, "DIGEST_INVALID");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");

    // Mismatch on a monolithic POST.
    post(&wrong).await.expect_error(400, "DIGEST_INVALID");
    s.get(&path).send().await.expect_error(404, "BLOB_UNKNOWN");

    // The closing PUT without ?digest=.
    let loc = s.start_upload("dig/app").await;
    s.put(&loc)
        .body(blob.clone())
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");

    // Malformed or unsupported digests.
    for bad in [
        "sha256:xyz",
        "sha256:",
        "notadigest",
        "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "",
    ] {
        let loc = s.start_upload("dig/app").await;
        put(&loc, bad).await.expect_error(400, "DIGEST_INVALID");
        post(bad).await.expect_error(400, "DIGEST_INVALID");
    }
}

async fn sha512_blobs(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(5000, 9);
    let d = sha512(&blob);

    let r = s
        .post(&format!("/v2/sha/app/blobs/uploads/?digest={d}"))
        .body(blob.clone())
        .send()
        .await;
    r.expect(201)
        .expect_header("location", &format!("/v2/sha/app/blobs/{d}"))
        .expect_header("docker-content-digest", &d);
    let r = s.get(&format!("/v2/sha/app/blobs/{d}")).send().await;
    r.expect(200).expect_header("docker-content-digest", &d);
    assert_eq!(r.body, blob);
    s.head(&format!("/v2/sha/app/blobs/{d}"))
        .send()
        .await
        .expect(200)
        .expect_header("content-length", "5000");

    // Chunked, into another repository.
    let loc = s.start_upload("sha/chunked").await;
    let r = s
        .patch(&loc)
        .header("content-range", "0-2999")
        .body(blob[..3000].to_vec())
        .send()
        .await;
    r.expect(202);
    let r = s
        .put(&with_query(&r.location(), "digest", &d))
        .header("content-range", "3000-4999")
        .body(blob[3000..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);
    assert_eq!(
        s.get(&format!("/v2/sha/chunked/blobs/{d}"))
            .send()
            .await
            .expect(200)
            .body,
        blob
    );

    // A sha512 mismatch.
    let loc = s.start_upload("sha/app").await;
    s.put(&with_query(&loc, "digest", &sha512(b"other")))
        .body(blob.clone())
        .send()
        .await
        .expect_error(400, "DIGEST_INVALID");
}

async fn content_range_and_length_mismatch_is_size_invalid(p: Proto) {
    let s = Server::start(p).await;
    let loc = s.start_upload("size/app").await;
    s.patch(&loc)
        .header("content-range", "0-9")
        .body(b"12345".to_vec())
        .send()
        .await
        .expect_error(400, "SIZE_INVALID");
    // Nothing was stored; a correct chunk still works.
    s.expect_upload_range(&loc, "0-0").await;
    s.patch(&loc)
        .header("content-range", "0-4")
        .body(b"12345".to_vec())
        .send()
        .await
        .expect(202)
        .expect_header("range", "0-4");
}

async fn large_blob_in_chunks_round_trips(p: Proto) {
    let s = Server::start(p).await;
    let blob = data(4 * MIB + 12_345, 10);
    let d = sha256(&blob);

    // PATCHes of 1 MiB with Content-Range; the tail in the closing PUT.
    let mut loc = s.start_upload("big/app").await;
    let mut offset = 0;
    while blob.len() - offset > MIB {
        let end = offset + MIB;
        let r = s
            .patch(&loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", &format!("{offset}-{}", end - 1))
            .body(blob[offset..end].to_vec())
            .send()
            .await;
        r.expect(202)
            .expect_header("range", &format!("0-{}", end - 1));
        loc = r.location();
        offset = end;
    }
    let r = s
        .put(&with_query(&loc, "digest", &d))
        .header("content-range", &format!("{offset}-{}", blob.len() - 1))
        .body(blob[offset..].to_vec())
        .send()
        .await;
    r.expect(201).expect_header("docker-content-digest", &d);

    let path = format!("/v2/big/app/blobs/{d}");
    let r = s.get(&path).send().await;
    r.expect(200)
        .expect_header("content-length", &blob.len().to_string());
    assert!(r.body == blob, "4 MiB blob differs after the round trip");
    // A range across a chunk boundary.
    let r = s
        .get(&path)
        .header("range", &format!("bytes={}-{}", MIB - 10, MIB + 9))
        .send()
        .await;
    r.expect(206);
    assert_eq!(r.body, blob[MIB - 10..MIB + 10]);

    // The same blob streamed in one chunked PATCH, into another repository.
    let loc = s.start_upload("big/streamed").await;
    let r = s
        .patch(&loc)
        .chunked(blob.chunks(256 * 1024).map(<[u8]>::to_vec).collect())
        .send()
        .await;
    r.expect(202)
        .expect_header("range", &format!("0-{}", blob.len() - 1));
    s.put(&with_query(&r.location(), "digest", &d))
        .send()
        .await
        .expect(201);
    let r = s.get(&format!("/v2/big/streamed/blobs/{d}")).send().await;
    r.expect(200);
    assert!(r.body == blob, "streamed 4 MiB blob differs");
}

both_protocols!(
    unknown_upload_ids,
    upload_digest_errors,
    sha512_blobs,
    content_range_and_length_mismatch_is_size_invalid,
    large_blob_in_chunks_round_trips,
);
