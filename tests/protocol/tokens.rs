//! Cross-repository mounts with tokens: the challenge asks for pull on the
//! source, the token service grants each space-separated scope, and the
//! mount happens.

use super::*;

/// The `scope="..."` of a Bearer challenge.
pub fn challenge_param(challenge: &str, key: &str) -> String {
    let start = challenge
        .find(&format!("{key}=\""))
        .unwrap_or_else(|| panic!("no {key} in {challenge:?}"))
        + key.len()
        + 2;
    let len = challenge[start..].find('"').expect("closing quote");
    challenge[start..start + len].to_string()
}

#[tokio::test]
async fn token_mount_follows_the_challenge_and_mounts() {
    let s = auth_server("token").await;
    let blob = b"a layer shared by two repositories".to_vec();
    let d = sha256(&blob);
    let alice = basic(ALICE);
    for (i, proto) in PROTOCOLS.into_iter().enumerate() {
        let src = format!("team/src{i}");
        let r = send(
            &s,
            proto,
            Method::POST,
            &format!("/v2/{src}/blobs/uploads/?digest={d}"),
            &[("authorization", alice.as_str())],
            Some(blob.clone()),
        )
        .await;
        assert_eq!(r.status(), 201, "{proto:?}: push to the source");
        let mount = format!("/v2/team/dst{i}/blobs/uploads/?mount={d}&from={src}");
        let r = send(&s, proto, Method::POST, &mount, &[], None).await;
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        let scope = challenge_param(&challenge, "scope");
        let want = format!("repository:team/dst{i}:pull,push repository:{src}:pull");
        assert_eq!(scope, want, "{proto:?}: challenge {challenge}");
        // As Go clients do: realm and service from the challenge, the scope
        // as one space-separated parameter.
        let realm = challenge_param(&challenge, "realm");
        let service = challenge_param(&challenge, "service");
        let token_url = reqwest::Url::parse_with_params(
            &realm,
            &[("service", service.as_str()), ("scope", scope.as_str())],
        )
        .unwrap();
        let path = format!("{}?{}", token_url.path(), token_url.query().unwrap());
        let r = send(
            &s,
            proto,
            Method::GET,
            &path,
            &[("authorization", alice.as_str())],
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        let token = v["token"].as_str().expect("token").to_string();
        let bearer = format!("Bearer {token}");
        let r = send(
            &s,
            proto,
            Method::POST,
            &mount,
            &[("authorization", bearer.as_str())],
            None,
        )
        .await;
        assert_eq!(r.status(), 201, "{proto:?}: the mount happens");
        assert_eq!(
            r.headers()["docker-content-digest"].to_str().unwrap(),
            d,
            "{proto:?}"
        );
    }
}

/// With `challenge: basic` the same mount happens with Basic credentials.
#[tokio::test]
async fn basic_mount_mounts_on_both_versions() {
    let s = auth_server("basic").await;
    let blob = b"a layer shared by two repositories".to_vec();
    let d = sha256(&blob);
    let alice = basic(ALICE);
    let auth = [("authorization", alice.as_str())];
    for (i, proto) in PROTOCOLS.into_iter().enumerate() {
        let src = format!("team/src{i}");
        let push = format!("/v2/{src}/blobs/uploads/?digest={d}");
        let r = send(&s, proto, Method::POST, &push, &auth, Some(blob.clone())).await;
        assert_eq!(r.status(), 201, "{proto:?}: push to the source");
        let mount = format!("/v2/team/dst{i}/blobs/uploads/?mount={d}&from={src}");
        let r = send(&s, proto, Method::POST, &mount, &[], None).await;
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        let r = send(&s, proto, Method::POST, &mount, &auth, None).await;
        assert_eq!(r.status(), 201, "{proto:?}: the mount happens");
    }
}
