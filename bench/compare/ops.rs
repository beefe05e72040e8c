//! The registry API calls the figures time: a monolithic upload (POST, then
//! PUT `?digest=` with the body), a chunked upload (POST, PATCHes with
//! `Content-Range`, PUT `?digest=`), a verified download (every byte hashed
//! and compared with the digest), a HEAD, a token from regproxy's token
//! service, and a small image (config, layer, manifest) to GET manifests of.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;

use crate::client::{empty, expect, full, location, with_query, Conn, Target};
use crate::data::{digest_of, Blob};
use crate::{Ctx, Res};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// POST an upload session; returns its Location path.
async fn start_upload(c: &mut Conn, t: &Target, repo: &str) -> Res<String> {
    let path = format!("/v2/{repo}/blobs/uploads/");
    let (st, h, body) = c
        .call(
            t,
            Method::POST,
            &path,
            &[("content-length", "0".into())],
            empty(),
        )
        .await?;
    expect(&format!("POST {path}"), st, 202, &body)?;
    location(&h)
}

/// POST, then PUT `?digest=` with the whole blob as the body.
pub async fn upload_monolithic(t: &Target, repo: &str, blob: &Blob) -> Res<()> {
    let mut c = Conn::open(t).await?;
    let loc = start_upload(&mut c, t, repo).await?;
    let put = with_query(&loc, "digest", &blob.digest);
    let headers = [
        ("content-type", "application/octet-stream".to_string()),
        ("content-length", blob.len.to_string()),
    ];
    let (st, _, body) = c
        .call(t, Method::PUT, &put, &headers, blob.body(0, blob.len))
        .await?;
    expect(
        &format!("PUT {repo} blob ({} bytes)", blob.len),
        st,
        201,
        &body,
    )
}

/// POST, PATCHes of `chunk` bytes with `Content-Range`, PUT `?digest=`.
pub async fn upload_chunked(t: &Target, repo: &str, blob: &Blob, chunk: u64) -> Res<()> {
    let mut c = Conn::open(t).await?;
    let mut loc = start_upload(&mut c, t, repo).await?;
    let mut start = 0;
    let max_chunks = blob.len.div_ceil(chunk);
    for _ in 0..max_chunks {
        let end = (start + chunk).min(blob.len);
        let headers = [
            ("content-type", "application/octet-stream".to_string()),
            ("content-length", (end - start).to_string()),
            ("content-range", format!("{start}-{}", end - 1)),
        ];
        let (st, h, body) = c
            .call(t, Method::PATCH, &loc, &headers, blob.body(start, end))
            .await?;
        expect(
            &format!("PATCH {repo} bytes {start}-{}", end - 1),
            st,
            202,
            &body,
        )?;
        loc = location(&h)?;
        start = end;
    }
    let put = with_query(&loc, "digest", &blob.digest);
    let (st, _, body) = c
        .call(
            t,
            Method::PUT,
            &put,
            &[("content-length", "0".into())],
            empty(),
        )
        .await?;
    expect(&format!("PUT {repo} (commit chunked)"), st, 201, &body)
}

/// GETs a blob (or any path), keeping every frame, and checks the bytes'
/// SHA-256 against `digest` after the clock stopped. Returns the seconds
/// from request to last byte and the protocol used.
pub async fn download_verified(
    t: &Target,
    path: &str,
    digest: &str,
    len: u64,
) -> Res<(f64, &'static str)> {
    let mut c = Conn::open(t).await?;
    let started = Instant::now();
    let resp = c.send(t, Method::GET, path, &[], empty()).await?;
    if resp.status() != 200 {
        return Err(format!("GET {path}: {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut frames: Vec<Bytes> = Vec::new();
    let mut got = 0u64;
    // Bounded: at most `len` bytes are accepted, and the caller's timeout
    // bounds the time.
    while let Some(frame) = body.frame().await {
        let frame = frame.ctx(format!("GET {path}: reading the body"))?;
        if let Ok(data) = frame.into_data() {
            got += data.len() as u64;
            if got > len {
                return Err(format!("GET {path}: more than the {len} bytes expected"));
            }
            frames.push(data);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if got != len {
        return Err(format!("GET {path}: got {got} bytes, expected {len}"));
    }
    let seen = digest_of(&frames);
    if seen != digest {
        return Err(format!(
            "GET {path}: WRONG BYTES: the body's sha256 is {seen}, expected {digest}"
        ));
    }
    Ok((secs, c.protocol()))
}

/// HEAD of a blob must answer 200 with its size.
pub async fn head_blob(t: &Target, repo: &str, blob: &Blob) -> Res<()> {
    let mut c = Conn::open(t).await?;
    let path = format!("/v2/{repo}/blobs/{}", blob.digest);
    let (st, h, body) = c.call(t, Method::HEAD, &path, &[], empty()).await?;
    expect(&format!("HEAD {path}"), st, 200, &body)?;
    let size = h.get("content-length").and_then(|v| v.to_str().ok());
    if size != Some(&blob.len.to_string()) {
        return Err(format!(
            "HEAD {path}: Content-Length {size:?}, expected {}",
            blob.len
        ));
    }
    Ok(())
}

/// A token from regproxy's token service for `scope` (may be empty).
pub async fn token(t: &Target, scope: &str) -> Res<String> {
    let mut c = Conn::open(t).await?;
    let mut path = "/auth/token?service=regproxy".to_string();
    if !scope.is_empty() {
        path = with_query(&path, "scope", scope);
    }
    let (st, _, body) = c.call(t, Method::GET, &path, &[], empty()).await?;
    expect("GET /auth/token", st, 200, &body)?;
    let doc: serde_json::Value = serde_json::from_slice(&body).ctx("token answer")?;
    doc["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "token answer has no `token`".into())
}

/// Pushes a small image (1 KiB config-like blob, 1 KiB layer, OCI
/// manifest) as `repo:tag`; returns the manifest's bytes.
pub async fn push_small_image(t: &Target, repo: &str, tag: &str) -> Res<Bytes> {
    let mut c = Conn::open(t).await?;
    let config = Bytes::from(format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\
         \"diff_ids\":[]}},\"bench\":\"{}\"}}",
        hex::encode(rand::random::<[u8; 16]>())
    ));
    let mut layer = vec![0u8; 1024];
    rand::fill(&mut layer[..]);
    let layer = Bytes::from(layer);
    let mut descs = Vec::new();
    for (bytes, media) in [
        (&config, "application/vnd.oci.image.config.v1+json"),
        (&layer, "application/vnd.oci.image.layer.v1.tar"),
    ] {
        let digest = digest_of(std::slice::from_ref(bytes));
        let loc = start_upload(&mut c, t, repo).await?;
        let put = with_query(&loc, "digest", &digest);
        let headers = [
            ("content-type", "application/octet-stream".to_string()),
            ("content-length", bytes.len().to_string()),
        ];
        let (st, _, body) = c
            .call(t, Method::PUT, &put, &headers, full(bytes.clone()))
            .await?;
        expect(&format!("PUT small blob to {repo}"), st, 201, &body)?;
        descs.push(serde_json::json!({"mediaType": media, "digest": digest, "size": bytes.len()}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descs[0],
        "layers": [descs[1]],
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).ctx("manifest JSON")?);
    let path = format!("/v2/{repo}/manifests/{tag}");
    let headers = [
        ("content-type", OCI_MANIFEST.to_string()),
        ("content-length", bytes.len().to_string()),
    ];
    let (st, _, body) = c
        .call(t, Method::PUT, &path, &headers, full(bytes.clone()))
        .await?;
    expect(&format!("PUT {path}"), st, 201, &body)?;
    // The manifest reads back byte for byte.
    let (st, _, got) = c
        .call(
            t,
            Method::GET,
            &path,
            &[("accept", OCI_MANIFEST.into())],
            empty(),
        )
        .await?;
    expect(&format!("GET {path}"), st, 200, &got)?;
    if got != bytes {
        return Err(format!(
            "GET {path}: WRONG BYTES: the manifest differs from the one pushed"
        ));
    }
    Ok(bytes)
}

/// Runs `fut` with a deadline, naming `what` on timeout.
pub async fn bounded<T>(
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = Res<T>>,
) -> Res<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))?
}
