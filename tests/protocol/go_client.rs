//! A registry client as Go's (crane, ORAS) behaves: follows `Bearer` and
//! `Basic` challenges (realm, service and scope from the challenge) to push
//! and pull a blob and a manifest, over HTTP/2 and HTTP/1.1.

use super::*;

/// Answers 401 challenges as Go registry clients do: `Bearer` -> a token
/// from the challenge's realm (with its service and scope, Basic
/// credentials), then the same request again; `Basic` -> the request again
/// with credentials.
pub struct ChallengeClient<'a> {
    s: &'a TlsServer,
    proto: Proto,
    client: reqwest::Client,
    auth: Option<String>,
}

impl<'a> ChallengeClient<'a> {
    fn new(s: &'a TlsServer, proto: Proto) -> Self {
        ChallengeClient {
            s,
            proto,
            client: s.client(proto),
            auth: None,
        }
    }

    async fn call(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> reqwest::Response {
        let url = if url.starts_with('/') {
            self.s.url(url)
        } else {
            url.to_string()
        };
        for attempt in 0..2 {
            let mut req = self.client.request(method.clone(), &url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(a) = &self.auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = body {
                req = req.body(b.to_vec());
            }
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
            assert_eq!(r.version(), self.proto.version(), "{method} {url}");
            if r.status() != 401 || attempt == 1 {
                return r;
            }
            let challenge = r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            self.auth = Some(if challenge.starts_with("Bearer ") {
                let token_url = reqwest::Url::parse_with_params(
                    &challenge_param(&challenge, "realm"),
                    &[
                        ("service", challenge_param(&challenge, "service")),
                        ("scope", challenge_param(&challenge, "scope")),
                    ],
                )
                .unwrap();
                let t = self
                    .client
                    .get(token_url.clone())
                    .header("authorization", basic(ALICE))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("token from {token_url}: {e:?}"));
                assert_eq!(t.status(), 200, "token from {token_url}");
                assert_eq!(t.version(), self.proto.version());
                let v: serde_json::Value = t.json().await.unwrap();
                format!("Bearer {}", v["token"].as_str().expect("a token"))
            } else {
                assert!(challenge.starts_with("Basic "), "{challenge}");
                basic(ALICE)
            });
        }
        unreachable!("two attempts at most")
    }

    /// POST, then PUT `?digest=` (as Go clients push a blob).
    async fn push_blob(&mut self, repo: &str, blob: &[u8]) -> String {
        let d = sha256(blob);
        let r = self
            .call(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status(), 202);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .call(
                Method::PUT,
                &format!("{loc}{sep}digest={d}"),
                &[("content-type", "application/octet-stream")],
                Some(blob),
            )
            .await;
        assert_eq!(r.status(), 201, "PUT {loc}");
        d
    }
}

#[tokio::test]
async fn http2_client_follows_challenges_to_push_and_pull() {
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    for challenge in ["token", "basic"] {
        let s = auth_server(challenge).await;
        for proto in PROTOCOLS {
            let mut c = ChallengeClient::new(&s, proto);
            let repo = format!("team/{challenge}-{proto:?}").to_lowercase();
            let layer = vec![42u8; 300 * 1024];
            let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
            let layer_d = c.push_blob(&repo, &layer).await;
            let config_d = c.push_blob(&repo, &config).await;
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": config_d, "size": config.len() },
                "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                             "digest": layer_d, "size": layer.len() }],
            }))
            .unwrap();
            let r = c
                .call(
                    Method::PUT,
                    &format!("/v2/{repo}/manifests/v1"),
                    &[("content-type", MANIFEST)],
                    Some(&manifest),
                )
                .await;
            assert_eq!(r.status(), 201, "{challenge} {proto:?}: manifest PUT");

            // Pull, as a fresh client would.
            let mut c = ChallengeClient::new(&s, proto);
            let r = c
                .call(
                    Method::GET,
                    &format!("/v2/{repo}/manifests/v1"),
                    &[("accept", MANIFEST)],
                    None,
                )
                .await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.bytes().await.unwrap().to_vec(), manifest);
            let r = c
                .call(
                    Method::GET,
                    &format!("/v2/{repo}/blobs/{layer_d}"),
                    &[],
                    None,
                )
                .await;
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.bytes().await.unwrap().to_vec(),
                layer,
                "{challenge} {proto:?}"
            );
        }
    }
}
