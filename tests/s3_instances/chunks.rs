//! One chunked blob upload carried by two instances, with the registry API
//! directly (no client retries to hide a mistake): started on A, PATCHed
//! alternately through A and B, A killed (-9) between chunks, the upload's
//! status read through B (`Range`, on GET and HEAD), the rest PATCHed and
//! the final PUT sent through B, which then serves the blob. On HTTP/1.1
//! and HTTP/2 (h2c).

use super::*;

/// Chunk sizes: uneven, some below and some above S3's 5 MiB part minimum.
const CHUNKS: [usize; 6] = [MIB + 7, 6 * MIB + 3, 300_001, 2 * MIB, 5 * MIB + 11, 77];
/// Chunks sent before A dies (alternately A, B, A, ...).
const BEFORE_KILL: usize = 3;

/// The path and query of a `Location`, absolute or not.
fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or_else(|| "/".to_string(), |i| rest[i..].to_string()),
        None => location.to_string(),
    }
}

/// The upload's status through `base` by GET and HEAD: both `204` with
/// `Range: 0-(size-1)` and the upload's id; returns the `Location` path.
fn assert_status(proto: Proto, base: &str, upload: &str, size: usize, id: &str) -> String {
    let mut location = String::new();
    for method in ["GET", "HEAD"] {
        let r = http_request_as(proto, method, &format!("{base}{upload}"), &[], None);
        assert_eq!(r.status, 204, "{method} {upload} on {base}: {}", r.text());
        assert_eq!(
            r.header("range").as_deref(),
            Some(format!("0-{}", size - 1).as_str()),
            "{method} {upload} on {base}: the stored size"
        );
        assert_eq!(r.header("docker-upload-uuid").as_deref(), Some(id));
        assert!(r.body.is_empty());
        location = path_of(&r.header("location").unwrap_or_default());
    }
    location
}

fn patch(proto: Proto, base: &str, upload: &str, start: usize, chunk: &[u8]) -> HttpResponse {
    let range = format!("{start}-{}", start + chunk.len() - 1);
    http_request_as(
        proto,
        "PATCH",
        &format!("{base}{upload}"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &range),
        ],
        Some(chunk.to_vec()),
    )
}

#[test]
fn a_chunked_upload_moves_between_instances_and_survives_the_first_one_killed() {
    let garage = Garage::start(BUCKET);
    let dir = temp_dir("s3-chunks-");
    let creds = garage.credentials_file(dir.path());
    let yaml = format!(
        "tls:\n  enabled: false\nauth:\n  enabled: false\n{}",
        garage.storage_yaml(BUCKET, "chunks", &creds)
    );
    let config = write_config(dir.path(), &yaml);
    for proto in PROTOCOLS {
        let mut a = serve_loopback(&config);
        let b = serve_loopback(&config);
        let (ua, ub) = (a.url(), b.url());
        let repo = format!("team/chunks-{proto:?}").to_lowercase();
        let data = random_bytes(CHUNKS.iter().sum());
        let digest = format!("sha256:{}", sha256_hex(&data));

        let r = http_request_as(
            proto,
            "POST",
            &format!("{ua}/v2/{repo}/blobs/uploads/"),
            &[],
            None,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let id = r.header("docker-upload-uuid").expect("Docker-Upload-UUID");
        let mut upload = path_of(&r.header("location").expect("Location"));
        let mut sent = 0;
        for (i, &len) in CHUNKS.iter().enumerate() {
            if i == BEFORE_KILL {
                // Both see what A and B stored so far; then A dies.
                assert_status(proto, &ua, &upload, sent, &id);
                upload = assert_status(proto, &ub, &upload, sent, &id);
                a.kill9();
                assert_status(proto, &ub, &upload, sent, &id);
                // A chunk that does not start where the upload ends is
                // refused (416), and stores nothing.
                let r = patch(proto, &ub, &upload, sent + 1, &data[sent..sent + 10]);
                assert_eq!(r.status, 416, "{}", r.text());
                assert_status(proto, &ub, &upload, sent, &id);
            }
            let base = if i < BEFORE_KILL && i % 2 == 0 {
                &ua
            } else {
                &ub
            };
            let r = patch(proto, base, &upload, sent, &data[sent..sent + len]);
            assert_eq!(r.status, 202, "chunk {i} through {base}: {}", r.text());
            sent += len;
            assert_eq!(
                r.header("range").as_deref(),
                Some(format!("0-{}", sent - 1).as_str()),
                "chunk {i} through {base}"
            );
            upload = path_of(&r.header("location").expect("Location"));
        }
        assert_status(proto, &ub, &upload, sent, &id);

        // The final PUT (no body) through B commits what both stored.
        let sep = if upload.contains('?') { '&' } else { '?' };
        let r = http_request_as(
            proto,
            "PUT",
            &format!("{ub}{upload}{sep}digest={digest}"),
            &[],
            None,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("docker-content-digest"), Some(digest.clone()));
        assert_eq!(
            path_of(&r.header("location").unwrap_or_default()),
            format!("/v2/{repo}/blobs/{digest}")
        );

        // B serves the blob (GET and HEAD), and the session is gone.
        let url = format!("{ub}/v2/{repo}/blobs/{digest}");
        let got = http_request_as(proto, "GET", &url, &[], None);
        assert_eq!(got.status, 200);
        assert!(
            got.body == data,
            "the blob B serves differs from the upload"
        );
        let head = http_request_as(proto, "HEAD", &url, &[], None);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some(data.len().to_string()));
        assert_eq!(head.header("docker-content-digest"), Some(digest.clone()));
        assert!(head.body.is_empty());
        for method in ["GET", "HEAD"] {
            let r = http_request_as(proto, method, &format!("{ub}{upload}"), &[], None);
            assert_eq!(r.status, 404, "{method} the committed upload");
        }
        // A instance started afresh sees the same blob.
        let c = serve_loopback(&config);
        let again = http_request_as(
            proto,
            "GET",
            &format!("{}/v2/{repo}/blobs/{digest}", c.url()),
            &[],
            None,
        );
        assert!(again.status == 200 && again.body == data);
    }
}
