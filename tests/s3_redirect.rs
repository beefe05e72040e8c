//! Blob downloads answered with a redirect to a presigned URL of the S3
//! store (`storage.s3.redirect: true`, off by default), against a real
//! Garage node:
//!
//! - `GET` of a blob the client may pull answers `307` with a `Location`
//!   presigned for 20 minutes, over HTTP/1.1 and HTTP/2, with a token and
//!   with Basic credentials; the URL serves exactly the blob (and a range of
//!   it) to a client holding no credentials; `HEAD` is still answered here,
//!   on the same connection;
//! - nothing is redirected before the checks: no credentials, a user
//!   without pull, a blob of another repository and an unknown digest get
//!   their usual errors and no `Location`;
//! - without `redirect`, blobs are streamed as before;
//! - Docker, skopeo and containerd's ctr pull through the redirects,
//!   content verified.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::*;

const BUCKET: &str = "registry";
const PULLER: (&str, &str) = ("alice", "alice-secret-1");
const OUTSIDER: (&str, &str) = ("mallory", "mallory-secret-1");

/// `serve --config` for one instance over TLS (certificates made in the
/// shared directory on the first start), on the shared bucket, asking
/// clients for `challenge` credentials, redirecting blob downloads or not.
fn start(dir: &Path, garage: &Garage, creds: &Path, challenge: &str, redirect: bool) -> Regproxy {
    let yaml = format!(
        "tls:\n  dir: {certs}\nauth:\n  htpasswd: {htpasswd}\n  challenge: {challenge}\n  \
         token:\n    key: {certs}/token.key\n\
         access:\n  default: deny\n  rules:\n    - subjects: [user:alice]\n      \
         repositories: [team-a]\n      actions: [pull, push]\n    - subjects: [user:mallory]\n      \
         repositories: [elsewhere]\n      actions: [pull, push]\n{storage}    redirect: {redirect}\n",
        certs = dir.join("certs").display(),
        htpasswd = dir.join("htpasswd").display(),
        storage = garage.storage_yaml(BUCKET, "", creds),
    );
    let config = dir.join(format!("{challenge}-{redirect}.yaml"));
    std::fs::write(&config, yaml).expect("write config");
    Regproxy::start_with_args(&[
        "serve",
        "--config",
        path_str(&config),
        "--listen",
        "127.0.0.1:0",
    ])
}

fn basic((user, password): (&str, &str)) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn token(client: &reqwest::Client, url: &str, who: (&str, &str), scope: &str) -> String {
    let r = client
        .get(format!("{url}/auth/token?service=regproxy&scope={scope}"))
        .header("Authorization", basic(who))
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200, "token for {}", who.0);
    let body: serde_json::Value = r.json().await.expect("token JSON");
    format!("Bearer {}", body["token"].as_str().expect("a token"))
}

/// Pushes a blob (monolithic) and an image manifest naming it as its only
/// layer, with Basic credentials.
async fn push(client: &reqwest::Client, url: &str, repo: &str, tag: &str, layer: &[u8]) {
    let auth = basic(PULLER);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    for blob in [&config[..], layer] {
        let r = client
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                digest_of(blob)
            ))
            .header("Authorization", &auth)
            .header("Content-Type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .await
            .expect("blob upload");
        assert_eq!(r.status(), 201, "upload to {repo}");
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer), "size": layer.len()}],
    });
    let r = client
        .put(format!("{url}/v2/{repo}/manifests/{tag}"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).expect("manifest JSON"))
        .send()
        .await
        .expect("manifest PUT");
    assert_eq!(r.status(), 201, "manifest PUT to {repo}");
}

/// A client that holds nothing of the registry's: no CA (the store is
/// plain HTTP here), no credentials, no redirects.
fn bare_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "not OCI error JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_gets_redirect_to_a_presigned_url_only_after_every_check() {
    let garage = Garage::start(BUCKET);
    let dir = temp_dir("s3-redirect-");
    let creds = garage.credentials_file(dir.path());
    add_users(&dir.path().join("htpasswd"), &[PULLER, OUTSIDER]);
    // The first start makes the CA, certificate and token key; the others
    // read them. `plain` streams (the default), the other two redirect.
    let plain = start(dir.path(), &garage, &creds, "token", false);
    let tokens = start(dir.path(), &garage, &creds, "token", true);
    let basics = start(dir.path(), &garage, &creds, "basic", true);
    let ca = std::fs::read(dir.path().join("certs/ca.crt")).expect("the built-in CA");

    let layer = random_bytes(300_000);
    let digest = digest_of(&layer);
    let setup = client_for(&ca, Proto::Http1);
    push(&setup, &plain.url(), "team-a/app", "v1", &layer).await;
    let other = random_bytes(1000);
    push(&setup, &plain.url(), "team-a/other", "v1", &other).await;
    let blob = format!("/v2/team-a/app/blobs/{digest}");

    // Without `redirect`, the blob is streamed by regproxy.
    let auth = basic(PULLER);
    let r = setup
        .get(format!("{}{blob}", plain.url()))
        .header("Authorization", &auth)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    assert_eq!(r.bytes().await.expect("body").as_ref(), &layer[..]);

    let store = bare_client();
    for server in [&tokens, &basics] {
        for proto in [Proto::Http1, Proto::Http2] {
            let client = client_for(&ca, proto);
            let url = server.url();
            let what = format!("{} {proto:?}", server.url());
            let mut creds = vec![("Basic", basic(PULLER))];
            let scope = "repository:team-a/app:pull";
            creds.push(("Bearer", token(&client, &url, PULLER, scope).await));
            for (kind, auth) in &creds {
                let r = client
                    .get(format!("{url}{blob}"))
                    .header("Authorization", auth)
                    .send()
                    .await
                    .expect("GET blob");
                assert_eq!(r.status(), 307, "{what} {kind}");
                assert_eq!(r.version(), proto.version(), "{what}");
                let h = r.headers().clone();
                assert_eq!(h["docker-content-digest"], digest.as_str(), "{what}");
                let location = h["location"].to_str().expect("Location").to_string();
                assert!(
                    location.starts_with(&format!(
                        "{}/{BUCKET}/docker/registry/v2/blobs/sha256/",
                        garage.endpoint
                    )) && location.contains("X-Amz-Signature=")
                        && location.contains("X-Amz-Expires=1200"),
                    "{what} {kind}: {location}"
                );
                assert!(
                    !location.contains(&garage.secret),
                    "the secret key is in the URL"
                );
                assert!(r.bytes().await.expect("body").is_empty());
                // HEAD is answered here, on the same connection.
                let r = client
                    .head(format!("{url}{blob}"))
                    .header("Authorization", auth)
                    .send()
                    .await
                    .expect("HEAD blob");
                assert_eq!(r.status(), 200, "{what} {kind} HEAD");
                assert!(r.headers().get("location").is_none());
                assert_eq!(
                    r.headers()["content-length"],
                    layer.len().to_string().as_str()
                );
                // The URL serves the blob to a client holding nothing.
                let r = store.get(&location).send().await.expect("GET presigned");
                assert_eq!(r.status(), 200, "{what} {kind}: {location}");
                let body = r.bytes().await.expect("presigned body");
                assert_eq!(digest_of(&body), digest, "{what} {kind}");
                let r = store
                    .get(&location)
                    .header("Range", "bytes=1000-1999")
                    .send()
                    .await
                    .expect("GET presigned range");
                assert_eq!(r.status(), 206, "{what} {kind}");
                assert_eq!(r.bytes().await.expect("range").as_ref(), &layer[1000..2000]);
            }

            // Nothing is redirected before the checks.
            let refused = [
                (None, blob.clone(), "no credentials"),
                (Some(basic(OUTSIDER)), blob.clone(), "a user without pull"),
                (
                    Some(creds[0].1.clone()),
                    format!("/v2/team-a/app/blobs/{}", digest_of(&other)),
                    "a blob of another repository",
                ),
                (
                    Some(creds[0].1.clone()),
                    format!("/v2/team-a/app/blobs/{}", digest_of(b"never pushed")),
                    "an unknown blob",
                ),
            ];
            for (auth, path, case) in refused {
                let mut req = client.get(format!("{url}{path}"));
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                let r = req.send().await.expect("GET");
                let status = r.status().as_u16();
                assert!(r.headers().get("location").is_none(), "{what}: {case}");
                let code = error_code(&r.bytes().await.expect("body"));
                let expected: &[(u16, &str)] = match case {
                    "no credentials" => &[(401, "UNAUTHORIZED")],
                    "a user without pull" => &[(401, "UNAUTHORIZED"), (403, "DENIED")],
                    _ => &[(404, "BLOB_UNKNOWN")],
                };
                assert!(
                    expected.contains(&(status, code.as_str())),
                    "{what}: {case}: {status} {code}"
                );
            }
        }
    }
    assert!(
        tokens.logs().contains("status=307") && basics.logs().contains("status=307"),
        "the access logs show no redirect:\n{}",
        tokens.logs()
    );
}

/// Real clients follow the redirects: Docker pulls an image it pushed and
/// gets the same image back; skopeo copies it into an OCI layout and ctr
/// pulls it (each checking every digest itself); every layer was fetched
/// from the store.
#[test]
fn docker_skopeo_and_ctr_pull_through_the_redirects() {
    let garage = Garage::start(BUCKET);
    let dir = temp_dir("s3-redirect-clients-");
    let creds = garage.credentials_file(dir.path());
    add_users(&dir.path().join("htpasswd"), &[PULLER]);
    let server = start(dir.path(), &garage, &creds, "token", true);
    let host = server.host();

    let engine = Dockerd::start();
    let mut login = engine.command(["login", &host, "-u", PULLER.0, "--password-stdin"]);
    let out = run_with_input(
        &mut login,
        format!("{}\n", PULLER.1).as_bytes(),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "docker login: {}", output_text(&out));
    let ctx = make_build_context(&engine.dir().join("ctx"), 2, 1024 * 1024);
    let image = format!("{host}/team-a/app:v1");
    let id = engine.build(&ctx.dir, &image);
    let layers = engine.inspect(&image, "{{json .RootFS.Layers}}");
    engine.docker_ok(["push", &image]);
    engine.docker_ok(["rmi", &image]);
    engine.docker_ok(["pull", &image]);
    assert_eq!(engine.inspect(&image, "{{.Id}}"), id);
    assert_eq!(engine.inspect(&image, "{{json .RootFS.Layers}}"), layers);

    let skopeo = Skopeo::new();
    let layout = skopeo.dir().join("layout");
    let user = format!("{}:{}", PULLER.0, PULLER.1);
    let out = skopeo.run([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &user,
        &format!("docker://{image}"),
        &format!("oci:{}:v1", layout.display()),
    ]);
    assert!(out.status.success(), "skopeo copy: {}", output_text(&out));

    let short = short_temp_dir("rp-ctr-");
    let containerd = Containerd::start(short.path());
    let hosts = hosts_dir(
        &short.path().join("hosts"),
        &host,
        Some(&dir.path().join("certs/ca.crt")),
    );
    let pulled = run(
        &mut containerd.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            &hosts,
            "--user",
            &user,
            &image,
        ]),
        Duration::from_secs(120),
    );
    assert!(
        pulled.status.success(),
        "ctr pull: {}",
        output_text(&pulled)
    );

    // Three layers (busybox and two data files) and the config, fetched
    // by Docker, skopeo and ctr: each a redirect, none streamed here.
    let logs = server.logs();
    let blob_gets = |status: &str| {
        logs.lines()
            .filter(|l| {
                l.contains("method=GET")
                    && l.contains("/blobs/sha256:")
                    && l.contains(&format!("status={status} "))
            })
            .count()
    };
    assert!(blob_gets("307") >= 12, "{logs}");
    assert_eq!(blob_gets("200"), 0, "{logs}");
}
