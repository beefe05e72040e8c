//! Integration tests of authentication over plain HTTP on 127.0.0.1: the
//! real server in-process on port 0 (one per test, its own temp dir, users
//! hashed with bcrypt cost 4 for speed), and the binary for the htpasswd CLI
//! and the first-start `admin`.
//!
//! What a Docker client meets: the 401 challenge (`Bearer realm=...,
//! service=..., scope=...`), the token service (`GET` with Basic, the OAuth2
//! `password` and `refresh_token` grants), scopes enforced per repository,
//! forged or misused tokens refused, Basic on registry requests, the
//! failed-login pause (per user and address), users removed or passwords
//! changed taking effect within seconds for logins and tokens alike, an LDAP
//! directory that is down answering 503 (never "wrong password"), and the
//! htpasswd file format shared with Apache's `htpasswd` both ways.
//!
//! Layout: fixture (server, requests, responses) -> challenges -> tokens ->
//! Basic and wrong passwords -> the pause -> user changes -> LDAP down ->
//! htpasswd files and CLI -> first start.
//!
//! Long file: one test per authentication behaviour, sharing the in-process server and request helpers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{
    add_users, b64url, basic_value, claims_of, client_from, send, token_of, wait_until, Cred, Resp,
    Server,
};
use regproxy::auth::htpasswd;
use regproxy::auth::identity::Source;
use regproxy::auth::token::{Claims, ResourceActions, TokenService, Use};

/// How soon a removed user or changed password must take effect (the
/// server re-reads the file every 2 s).
const CHANGE_WINDOW: Duration = Duration::from_secs(5);
const CMD_TIMEOUT: Duration = Duration::from_secs(30);

const ALICE: (&str, &str) = ("alice", "alice-Secret-1");
const BOB: (&str, &str) = ("bob", "bob-Secret-2");
const REPO: &str = "team/app";
const OTHER_REPO: &str = "team/other";

// ---------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_credentials_get_a_token_challenge_with_the_scope() {
    let s = Server::start(&[ALICE], "").await;
    let base = format!("Bearer realm=\"{}\",service=\"regproxy\"", s.realm());

    let r = s.get("/v2/", Cred::None).await;
    assert_eq!(r.expect_bearer_401(None), base);
    assert_eq!(r.header("Docker-Distribution-Api-Version"), "registry/2.0");

    let cases = [
        ("GET", format!("/v2/{REPO}/manifests/latest"), "pull"),
        ("HEAD", format!("/v2/{REPO}/manifests/latest"), "pull"),
        ("GET", format!("/v2/{REPO}/tags/list"), "pull"),
        (
            "GET",
            format!("/v2/{REPO}/blobs/sha256:{}", "a".repeat(64)),
            "pull",
        ),
        ("POST", format!("/v2/{REPO}/blobs/uploads/"), "pull,push"),
        ("PUT", format!("/v2/{REPO}/manifests/1"), "pull,push"),
        ("DELETE", format!("/v2/{REPO}/manifests/1"), "delete"),
    ];
    for (method, path, actions) in cases {
        let r = s.send(method, &path, Cred::None, None).await;
        r.expect(401);
        assert_eq!(
            r.challenge(),
            format!("{base},scope=\"repository:{REPO}:{actions}\""),
            "{method} {path}"
        );
        if method != "HEAD" {
            r.expect_error(401, "UNAUTHORIZED");
        }
    }
    let r = s.get("/v2/_catalog", Cred::None).await;
    r.expect(401);
    assert_eq!(
        r.challenge(),
        format!("{base},scope=\"registry:catalog:*\"")
    );

    // The token service gives an anonymous caller a token holding only
    // what the rules give anonymous users (here: nothing), like
    // Distribution; it opens no repository.
    let r = s
        .get(
            &format!("/auth/token?service=regproxy&scope=repository:{REPO}:pull"),
            Cred::None,
        )
        .await;
    let anonymous = token_of(&r);
    let claims = claims_of(&anonymous);
    assert_eq!(claims["sub"], "", "{claims}");
    assert_eq!(claims["access"], serde_json::json!([]), "{claims}");
    let r = s
        .get(&format!("/v2/{REPO}/tags/list"), Cred::Bearer(&anonymous))
        .await;
    r.expect_error(401, "UNAUTHORIZED");
    // Credentials that are not Basic are refused with a Basic challenge.
    let r = s
        .get("/auth/token?service=regproxy", Cred::Header("Digest x=1"))
        .await;
    r.expect_error(401, "UNAUTHORIZED");
    assert!(
        r.challenge().starts_with("Basic realm="),
        "{}",
        r.challenge()
    );

    // A method the token service does not have.
    let r = s.send("DELETE", "/auth/token", Cred::None, None).await;
    assert!(r.status == 405, "{} {}", r.status, r.text());
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_get_with_basic_and_from_the_password_grant_grant_their_scope_only() {
    let s = Server::start(&[ALICE], "").await;
    let data = b"a layer pushed with a token".to_vec();

    // GET with Basic, as `docker pull`/`push` does.
    let r = s
        .token_get(
            ALICE.0,
            ALICE.1,
            &format!("service=regproxy&scope=repository:{REPO}:pull,push"),
        )
        .await;
    let push = token_of(&r);
    assert!(
        r.json().get("refresh_token").is_none(),
        "no offline token asked"
    );
    let claims = claims_of(&push);
    assert_eq!(claims["sub"], ALICE.0);
    assert_eq!(claims["aud"], "regproxy");
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type": "repository", "name": REPO, "actions": ["pull", "push"]}])
    );

    s.get("/v2/", Cred::Bearer(&push)).await.expect(200);
    s.push_blob(REPO, &data, Cred::Bearer(&push))
        .await
        .expect(201);
    let got = s.get_blob(REPO, &data, Cred::Bearer(&push)).await;
    got.expect(200);
    assert_eq!(got.body, data);

    // A token for REPO is no token for OTHER_REPO.
    let r = s
        .get(&format!("/v2/{OTHER_REPO}/tags/list"), Cred::Bearer(&push))
        .await;
    let c = r.expect_bearer_401(Some("insufficient_scope"));
    assert!(
        c.contains(&format!("scope=\"repository:{OTHER_REPO}:pull\"")),
        "{c}"
    );
    let r = s.push_blob(OTHER_REPO, &data, Cred::Bearer(&push)).await;
    r.expect_bearer_401(Some("insufficient_scope"));
    // Nor for the catalog.
    s.get("/v2/_catalog", Cred::Bearer(&push))
        .await
        .expect_bearer_401(Some("insufficient_scope"));

    // A pull token cannot push or delete.
    let pull = s.token(ALICE, &format!("repository:{REPO}:pull")).await;
    s.get_blob(REPO, &data, Cred::Bearer(&pull))
        .await
        .expect(200);
    s.push_blob(REPO, b"more", Cred::Bearer(&pull))
        .await
        .expect_bearer_401(Some("insufficient_scope"));
    let del = format!("/v2/{REPO}/blobs/sha256:{}", common::sha256_hex(&data));
    s.send("DELETE", &del, Cred::Bearer(&pull), None)
        .await
        .expect_bearer_401(Some("insufficient_scope"));

    // POST with the OAuth2 password grant, two scopes, offline access.
    let scopes = format!("repository:{REPO}:pull repository:{OTHER_REPO}:pull");
    let r = s
        .token_post(&[
            ("grant_type", "password"),
            ("username", ALICE.0),
            ("password", ALICE.1),
            ("service", "regproxy"),
            ("client_id", "regproxy-tests"),
            ("access_type", "offline"),
            ("scope", &scopes),
        ])
        .await;
    let both = token_of(&r);
    assert!(
        r.json()["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "access_type=offline gives a refresh token: {}",
        r.text()
    );
    s.get_blob(REPO, &data, Cred::Bearer(&both))
        .await
        .expect(200);
    s.get(&format!("/v2/{OTHER_REPO}/tags/list"), Cred::Bearer(&both))
        .await
        .expect_error(404, "NAME_UNKNOWN");
    s.push_blob(REPO, b"x", Cred::Bearer(&both))
        .await
        .expect_bearer_401(Some("insufficient_scope"));

    // GET with offline_token=true (what `docker login` asks for).
    let r = s
        .token_get(
            ALICE.0,
            ALICE.1,
            "service=regproxy&offline_token=true&client_id=docker",
        )
        .await;
    token_of(&r);
    assert!(r.json()["refresh_token"].as_str().is_some(), "{}", r.text());

    // A grant type the service does not have is a client error.
    let r = s.token_post(&[("grant_type", "client_credentials")]).await;
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_and_access_tokens_are_not_interchangeable() {
    let s = Server::start(&[ALICE], "").await;
    let r = s
        .token_get(ALICE.0, ALICE.1, "service=regproxy&offline_token=true")
        .await;
    let access = token_of(&r);
    let refresh = r.json()["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    assert_ne!(access, refresh);
    assert_eq!(claims_of(&refresh)["use"], "refresh");

    // The refresh grant gives a new access token for the asked scope.
    let scope = format!("repository:{REPO}:pull,push");
    let r = s
        .token_post(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("service", "regproxy"),
            ("client_id", "docker"),
            ("scope", &scope),
        ])
        .await;
    let renewed = token_of(&r);
    assert!(r.json().get("refresh_token").is_none(), "{}", r.text());
    assert_eq!(claims_of(&renewed)["sub"], ALICE.0);
    s.push_blob(REPO, b"renewed", Cred::Bearer(&renewed))
        .await
        .expect(201);

    // A refresh token is not an access token...
    for path in ["/v2/".to_string(), format!("/v2/{REPO}/tags/list")] {
        s.get(&path, Cred::Bearer(&refresh))
            .await
            .expect_bearer_401(Some("invalid_token"));
    }
    // ...and an access token is not a refresh token.
    for token in [access.as_str(), renewed.as_str(), "garbage", ""] {
        let r = s
            .token_post(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("service", "regproxy"),
                ("scope", &scope),
            ])
            .await;
        r.expect_error(401, "UNAUTHORIZED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_garbled_expired_or_foreign_bearer_tokens_are_refused() {
    let s = Server::start(&[ALICE], "").await;
    let real = s.token(ALICE, &format!("repository:{REPO}:pull")).await;
    let path = format!("/v2/{REPO}/tags/list");
    s.get(&path, Cred::Bearer(&real))
        .await
        .expect_error(404, "NAME_UNKNOWN");
    let parts: Vec<&str> = real.split('.').collect();
    let claims = claims_of(&real);

    // The server's own key (made on start), to sign tokens it must refuse
    // for their content, and to show such a token is accepted when valid.
    let key_path = s.dir.path().join("certs/token.key");
    let svc = TokenService::open(
        &key_path,
        "regproxy",
        "regproxy",
        Duration::from_secs(300),
        Duration::from_secs(3600),
    )
    .expect("open the server's token key");
    let scope = vec![ResourceActions::parse_scope(&format!("repository:{REPO}:pull")).unwrap()];
    let pwv = claims["pwv"].as_str().map(str::to_string);
    let (valid, base_claims) = svc
        .issue(
            ALICE.0,
            Source::Htpasswd,
            pwv,
            vec![],
            scope.clone(),
            Use::Access,
        )
        .expect("issue");
    s.get(&path, Cred::Bearer(&valid))
        .await
        .expect_error(404, "NAME_UNKNOWN");
    let pem = std::fs::read(&key_path).expect("read token.key");
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("EC key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(svc.kid().to_string());
    let sign = |c: &Claims| jsonwebtoken::encode(&header, c, &encoding).expect("sign");
    let now = base_claims.iat;

    let mut expired = base_claims.clone();
    (expired.iat, expired.nbf, expired.exp) = (now - 7200, now - 7200, now - 3600);
    let mut not_yet = base_claims.clone();
    (not_yet.nbf, not_yet.exp) = (now + 3600, now + 7200);
    let mut audience = base_claims.clone();
    audience.aud = "another-registry".into();
    let mut issuer = base_claims.clone();
    issuer.iss = "someone-else".into();
    let mut old_password = base_claims.clone();
    old_password.pwv = Some("0000000000000000".into());
    let mut no_such_user = base_claims.clone();
    no_such_user.sub = "mallory".into();
    let mut refresh_use = base_claims.clone();
    refresh_use.token_use = Use::Refresh;

    // Another key (another registry's token).
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other = TokenService::open(
        &other_dir.path().join("token.key"),
        "regproxy",
        "regproxy",
        Duration::from_secs(300),
        Duration::from_secs(3600),
    )
    .expect("other key");
    let (foreign, _) = other
        .issue(ALICE.0, Source::Ldap, None, vec![], scope, Use::Access)
        .expect("issue");

    // The payload changed (more access, another user), signature kept.
    let mut widened = claims.clone();
    widened["access"][0]["name"] = OTHER_REPO.into();
    widened["access"][0]["actions"] = serde_json::json!(["pull", "push", "delete"]);
    let widened = format!(
        "{}.{}.{}",
        parts[0],
        b64url(widened.to_string().as_bytes()),
        parts[2]
    );
    let mut other_sub = claims.clone();
    other_sub["sub"] = "admin".into();
    let other_sub = format!(
        "{}.{}.{}",
        parts[0],
        b64url(other_sub.to_string().as_bytes()),
        parts[2]
    );
    // alg: none, and HS256 keyed with the public key (algorithm confusion).
    let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let hs_header = b64url(
        serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": svc.kid()})
            .to_string()
            .as_bytes(),
    );
    let public_pem = {
        let key = rcgen::KeyPair::from_pem(&String::from_utf8_lossy(&pem)).expect("key");
        key.public_key_pem()
    };
    let hs256 = {
        use hmac::Mac;
        let signing_input = format!("{hs_header}.{}", parts[1]);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(public_pem.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
    };
    let truncated = real[..real.len() - 10].to_string();

    let cases: Vec<(&str, String)> = vec![
        ("garbage", "garbage".into()),
        ("three dots", "a.b.c".into()),
        ("truncated signature", truncated),
        ("changed access", widened),
        ("changed subject", other_sub),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("another registry's key", foreign),
        ("expired", sign(&expired)),
        ("not valid yet", sign(&not_yet)),
        ("wrong audience", sign(&audience)),
        ("wrong issuer", sign(&issuer)),
        ("an old password's fingerprint", sign(&old_password)),
        ("a user not in htpasswd", sign(&no_such_user)),
        ("a refresh token", sign(&refresh_use)),
    ];
    for (what, token) in &cases {
        let r = s.get(&path, Cred::Bearer(token)).await;
        assert_eq!(r.status, 401, "{what}: {} {}", r.status, r.text());
        r.expect_bearer_401(Some("invalid_token"));
        let r = s.get("/v2/", Cred::Bearer(token)).await;
        assert_eq!(r.status, 401, "{what} on /v2/: {}", r.text());
    }
    // Malformed headers are a plain 401 challenge.
    for value in [
        "Bearer",
        "Bearer ",
        "Basic",
        "Basic !!!notbase64",
        "Digest x=1",
        "",
    ] {
        let r = s.get(&path, Cred::Header(value)).await;
        assert_eq!(r.status, 401, "{value:?}: {} {}", r.status, r.text());
        r.expect_error(401, "UNAUTHORIZED");
    }
}

// ---------------------------------------------------------------------------
// Basic auth and wrong passwords
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_on_registry_requests_and_in_basic_challenge_mode() {
    let s = Server::start(&[ALICE, BOB, ("carol", "pa:ss:word")], "").await;
    let data = b"pushed with Basic".to_vec();
    s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(200);
    s.push_blob(REPO, &data, Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(201);
    let r = s.get_blob(REPO, &data, Cred::Basic(BOB.0, BOB.1)).await;
    r.expect(200);
    assert_eq!(r.body, data);
    // The scheme name is case-insensitive.
    let lower = basic_value(BOB.0, BOB.1).replacen("Basic", "basic", 1);
    s.get("/v2/", Cred::Header(&lower)).await.expect(200);
    // A password with colons in it (only the first `:` separates).
    s.get("/v2/", Cred::Basic("carol", "pa:ss:word"))
        .await
        .expect(200);

    let b = Server::start(&[ALICE], "  challenge: basic\n").await;
    let r = b.get("/v2/", Cred::None).await;
    r.expect_error(401, "UNAUTHORIZED");
    let c = r.challenge();
    assert!(
        c.starts_with("Basic realm=\""),
        "basic mode challenge: {c:?}"
    );
    let r = b.get(&format!("/v2/{REPO}/tags/list"), Cred::None).await;
    r.expect(401);
    assert!(r.challenge().starts_with("Basic "), "{}", r.challenge());
    b.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(200);
    b.push_blob(REPO, &data, Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(201);
    let r = b.get("/v2/", Cred::Basic(ALICE.0, "wrong")).await;
    r.expect_error(401, "UNAUTHORIZED");
    assert!(r.challenge().starts_with("Basic "), "{}", r.challenge());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_unknown_and_empty_passwords_are_401_never_500() {
    let s = Server::start(&[ALICE, BOB], "").await;
    let wrong = "not-the-password";
    let mut seen = Vec::new();

    // (Fewer than 5 failures per user: the pause is another test.)
    let r = s.get("/v2/", Cred::Basic(ALICE.0, wrong)).await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    r.expect_bearer_401(None);
    let r = s.token_get(ALICE.0, wrong, "service=regproxy").await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    let r = s
        .token_post(&[
            ("grant_type", "password"),
            ("username", BOB.0),
            ("password", wrong),
            ("service", "regproxy"),
        ])
        .await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    // Unknown user, empty password, empty user, no colon, not UTF-8.
    let r = s.get("/v2/", Cred::Basic("nobody", wrong)).await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    let r = s.get("/v2/", Cred::Basic(BOB.0, "")).await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    let r = s.token_get(ALICE.0, "", "service=regproxy").await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    let r = s
        .token_post(&[("grant_type", "password"), ("username", BOB.0)])
        .await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    let r = s.get("/v2/", Cred::Basic("", wrong)).await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    let no_colon = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alicewithoutcolon")
    );
    let r = s.get("/v2/", Cred::Header(&no_colon)).await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));
    let not_utf8 = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b':', 0xff])
    );
    let r = s.get("/v2/", Cred::Header(&not_utf8)).await;
    seen.push(r.expect_error(401, "UNAUTHORIZED"));

    for message in &seen {
        assert!(
            !message.contains(wrong),
            "the password is echoed: {message}"
        );
        assert!(message.starts_with("authentication required"), "{message}");
    }
    // The real passwords still work (failures below the limit).
    s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(200);
    s.get("/v2/", Cred::Basic(BOB.0, BOB.1)).await.expect(200);
}

// ---------------------------------------------------------------------------
// The pause after repeated failures
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_pause_that_user_from_that_address_only() {
    let s = Server::start(&[ALICE, BOB], "").await;
    let token = s.token(ALICE, &format!("repository:{REPO}:pull")).await;

    for i in 1..=5 {
        let r = s
            .get("/v2/", Cred::Basic(ALICE.0, &format!("guess-{i}")))
            .await;
        assert_eq!(r.status, 401, "guess {i}: {}", r.text());
    }
    let check_paused = |r: &Resp| {
        let message = r.expect_error(429, "TOOMANYREQUESTS");
        let retry: u64 = r
            .header("Retry-After")
            .parse()
            .unwrap_or_else(|_| panic!("no numeric Retry-After: {:?}", r.headers));
        assert!((1..=10).contains(&retry), "Retry-After {retry}");
        assert!(message.contains("try again in"), "{message}");
    };
    check_paused(&s.get("/v2/", Cred::Basic(ALICE.0, "guess-6")).await);
    // While paused, even the right password waits, on every way in.
    check_paused(&s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1)).await);
    check_paused(&s.token_get(ALICE.0, ALICE.1, "service=regproxy").await);
    check_paused(
        &s.token_post(&[
            ("grant_type", "password"),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ])
        .await,
    );

    // Not paused: another user from the same address, the same user from
    // another address (127.0.0.2), and a token issued before.
    s.get("/v2/", Cred::Basic(BOB.0, BOB.1)).await.expect(200);
    let elsewhere = client_from(Some("127.0.0.2".parse().unwrap()));
    send(
        &elsewhere,
        &s.url("/v2/"),
        "GET",
        Cred::Basic(ALICE.0, ALICE.1),
        None,
        None,
    )
    .await
    .expect(200);
    s.get(&format!("/v2/{REPO}/tags/list"), Cred::Bearer(&token))
        .await
        .expect_error(404, "NAME_UNKNOWN");
}

// ---------------------------------------------------------------------------
// Users removed, passwords changed
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_ends_their_logins_and_tokens_within_seconds() {
    let s = Server::start(&[ALICE, BOB], "").await;
    let path = format!("/v2/{REPO}/tags/list");
    s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(200); // now cached
    let r = s
        .token_get(
            ALICE.0,
            ALICE.1,
            &format!("service=regproxy&offline_token=true&scope=repository:{REPO}:pull"),
        )
        .await;
    let token = token_of(&r);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    s.get(&path, Cred::Bearer(&token))
        .await
        .expect_error(404, "NAME_UNKNOWN");

    let removed = htpasswd::edit(&s.htpasswd(), |f| f.remove(ALICE.0)).expect("edit");
    assert!(removed);
    // Poll with the token (a Basic poll would trip the failed-login pause).
    let (srv, p, t) = (&s, &path, &token);
    let took = wait_until(
        "the removed user's token is refused",
        CHANGE_WINDOW,
        || async move { srv.get(p, Cred::Bearer(t)).await.status == 401 },
    )
    .await;
    eprintln!("a removed user's token was refused after {took:?}");
    s.get(&path, Cred::Bearer(&token))
        .await
        .expect_bearer_401(Some("invalid_token"));
    s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect_error(401, "UNAUTHORIZED");
    s.token_get(ALICE.0, ALICE.1, "service=regproxy")
        .await
        .expect_error(401, "UNAUTHORIZED");
    s.token_post(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "regproxy"),
    ])
    .await
    .expect_error(401, "UNAUTHORIZED");
    // Others are untouched.
    s.get("/v2/", Cred::Basic(BOB.0, BOB.1)).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_password_ends_old_logins_and_tokens_within_seconds() {
    let s = Server::start(&[ALICE], "").await;
    let path = format!("/v2/{REPO}/tags/list");
    s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(200);
    let r = s
        .token_get(
            ALICE.0,
            ALICE.1,
            &format!("service=regproxy&offline_token=true&scope=repository:{REPO}:pull"),
        )
        .await;
    let token = token_of(&r);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();

    let new_password = "alice-New-Secret-3";
    add_users(&s.htpasswd(), &[(ALICE.0, new_password)]);
    let (srv, p, t) = (&s, &path, &token);
    let took = wait_until("the old token is refused", CHANGE_WINDOW, || async move {
        srv.get(p, Cred::Bearer(t)).await.status == 401
    })
    .await;
    eprintln!("a token from before a password change was refused after {took:?}");
    s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect_error(401, "UNAUTHORIZED");
    s.token_post(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "regproxy"),
    ])
    .await
    .expect_error(401, "UNAUTHORIZED");
    s.get("/v2/", Cred::Basic(ALICE.0, new_password))
        .await
        .expect(200);
    let fresh = s
        .token((ALICE.0, new_password), &format!("repository:{REPO}:pull"))
        .await;
    s.get(&path, Cred::Bearer(&fresh))
        .await
        .expect_error(404, "NAME_UNKNOWN");
}

// ---------------------------------------------------------------------------
// LDAP down
// ---------------------------------------------------------------------------

fn ldap_section(url: &str) -> String {
    format!(
        "  ldap:\n    url: {url}\n    bind_dn: {}\n    bind_password: {}\n    \
         user_base: {}\n    timeout_secs: 1\n",
        common::LDAP_SVC_DN,
        common::LDAP_SVC_PW,
        common::LDAP_PEOPLE
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_is_down_is_503_unavailable_never_401() {
    let url = common::closed_ldap_url();
    let s = Server::start(&[ALICE], &ldap_section(&url)).await;

    // htpasswd comes first: its users work, and its wrong passwords are 401.
    s.get("/v2/", Cred::Basic(ALICE.0, ALICE.1))
        .await
        .expect(200);
    s.get("/v2/", Cred::Basic(ALICE.0, "wrong"))
        .await
        .expect_error(401, "UNAUTHORIZED");

    // A user htpasswd does not know must be asked of the directory: 503,
    // on /v2 and on the token service, and repeating it is no "guessing".
    for _ in 0..7 {
        let r = s.get("/v2/", Cred::Basic("bob", "bob-pw")).await;
        let message = r.expect_error(503, "UNAVAILABLE");
        assert!(
            message.contains("authentication service unavailable") && message.contains(&url),
            "{message}"
        );
        assert!(r.challenge().is_empty(), "503 is no login prompt");
    }
    let r = s.token_get("bob", "bob-pw", "service=regproxy").await;
    let message = r.expect_error(503, "UNAVAILABLE");
    assert!(message.contains("refused the connection"), "{message}");
    let r = s
        .token_post(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "bob-pw"),
        ])
        .await;
    r.expect_error(503, "UNAVAILABLE");
    assert!(!r.text().contains("bob-pw"));

    // A directory that accepts connections and never answers: 503 after
    // the configured timeout (1 s), not a hang.
    let silent = common::SilentServer::start();
    let s2 = Server::start(&[ALICE], &ldap_section(&silent.url("ldap"))).await;
    let started = Instant::now();
    let r = s2.get("/v2/", Cred::Basic("bob", "bob-pw")).await;
    let message = r.expect_error(503, "UNAVAILABLE");
    assert!(
        message.contains("authentication service unavailable")
            && message.contains("did not answer within 1 s"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// htpasswd files: Apache compatibility and the CLI
// ---------------------------------------------------------------------------

fn regproxy_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    cmd.args(args);
    cmd
}

fn apache_htpasswd() -> PathBuf {
    common::require_tool("/usr/bin/htpasswd", "apache2-utils")
}

fn out_text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `regproxy htpasswd ARGS --file FILE`, with `input` on stdin.
fn cli(file: &Path, args: &[&str], input: Option<&str>) -> Output {
    let mut cmd = regproxy_cmd(&["htpasswd"]);
    cmd.args(args).arg("--file").arg(file);
    match input {
        Some(i) => common::run_with_input(&mut cmd, i.as_bytes(), CMD_TIMEOUT),
        None => common::run(&mut cmd, CMD_TIMEOUT),
    }
}

#[track_caller]
fn assert_cli_ok(o: &Output) -> String {
    let (out, err) = out_text(o);
    assert!(o.status.success(), "failed ({}):\n{out}\n{err}", o.status);
    out
}

#[track_caller]
fn assert_cli_error(o: &Output, contains: &str) -> String {
    let (out, err) = out_text(o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert!(err.starts_with("regproxy: error: "), "{err}");
    assert!(err.contains(contains), "{err}");
    assert!(err.contains("\nhint: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_htpasswd_files_work_both_ways() {
    let apache = apache_htpasswd();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("htpasswd");

    // Apache writes: a line printed by `-n`, and a user added to the file.
    let o = common::run_ok(
        Command::new(&apache).args(["-Bbn", "-C", "5", "carol", "carol-pw"]),
        CMD_TIMEOUT,
    );
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(line.starts_with("carol:$2y$05$"), "{line}");
    std::fs::write(&file, format!("# written by Apache htpasswd\n{line}\n")).expect("write");
    common::run_ok(
        Command::new(&apache)
            .args(["-Bb", "-C", "5"])
            .arg(&file)
            .args(["erin", "erin:pw with spaces"]),
        CMD_TIMEOUT,
    );
    // An Apache MD5 entry, which regproxy refuses.
    let o = common::run_ok(
        Command::new(&apache).args(["-mbn", "old", "old-pw"]),
        CMD_TIMEOUT,
    );
    let md5 = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let mut text = std::fs::read_to_string(&file).expect("read");
    text.push_str(&md5);
    text.push('\n');
    std::fs::write(&file, text).expect("write");

    // regproxy writes, Apache verifies.
    assert_cli_ok(&cli(
        &file,
        &["add", "dave", "--cost", "4", "--password-stdin"],
        Some("dave-pw\n"),
    ));
    let verify = |user: &str, pw: &str| {
        let mut cmd = Command::new(&apache);
        cmd.arg("-vb").arg(&file).args([user, pw]);
        common::run(&mut cmd, CMD_TIMEOUT)
    };
    let o = verify("dave", "dave-pw");
    assert!(
        o.status.success(),
        "Apache refused regproxy's entry: {:?}",
        out_text(&o)
    );
    assert!(!verify("dave", "dave-wrong").status.success());

    // Apache wrote, regproxy verifies (CLI).
    assert_cli_ok(&cli(
        &file,
        &["verify", "carol", "--password-stdin"],
        Some("carol-pw\n"),
    ));
    assert_cli_ok(&cli(
        &file,
        &["verify", "erin", "--password-stdin"],
        Some("erin:pw with spaces\n"),
    ));
    assert_cli_error(
        &cli(
            &file,
            &["verify", "carol", "--password-stdin"],
            Some("nope\n"),
        ),
        "does not match",
    );

    // ...and the server accepts Apache's bcrypt users, not the MD5 one.
    let s = Server::start_in(dir, "").await;
    s.get("/v2/", Cred::Basic("carol", "carol-pw"))
        .await
        .expect(200);
    s.get("/v2/", Cred::Basic("erin", "erin:pw with spaces"))
        .await
        .expect(200);
    s.get("/v2/", Cred::Basic("dave", "dave-pw"))
        .await
        .expect(200);
    s.get("/v2/", Cred::Basic("carol", "carol-wrong"))
        .await
        .expect_error(401, "UNAUTHORIZED");
    s.get("/v2/", Cred::Basic("old", "old-pw"))
        .await
        .expect_error(401, "UNAUTHORIZED");
}

#[test]
fn the_htpasswd_cli_adds_replaces_removes_lists_and_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("users.htpasswd");
    std::fs::write(&file, "# team registry users\n\n").expect("write");

    let out = assert_cli_ok(&cli(
        &file,
        &["add", "alice", "--cost", "4", "--password-stdin"],
        Some("first-pw\n"),
    ));
    assert_eq!(out, format!("added user alice in {}\n", file.display()));
    assert_eq!(mode_of(&file), 0o600);
    assert_cli_ok(&cli(
        &file,
        &["add", "bob", "--cost", "4", "--password-stdin"],
        Some("bob-pw\n"),
    ));
    let before = std::fs::read_to_string(&file).expect("read");

    // Replacing keeps the line's place, and the comments.
    let out = assert_cli_ok(&cli(
        &file,
        &["add", "alice", "--cost", "4", "--password-stdin"],
        Some("second-pw\n"),
    ));
    assert_eq!(out, format!("updated user alice in {}\n", file.display()));
    let after = std::fs::read_to_string(&file).expect("read");
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines[..2], ["# team registry users", ""], "{after}");
    assert!(lines[2].starts_with("alice:$2y$04$"), "{after}");
    assert!(lines[3].starts_with("bob:$2y$04$"), "{after}");
    assert_eq!(lines.len(), 4, "{after}");
    assert_ne!(before.lines().nth(2), lines.get(2).copied(), "hash changed");
    assert_eq!(
        before.lines().nth(3),
        lines.get(3).copied(),
        "bob untouched"
    );
    assert!(!after.contains("second-pw") && !after.contains("first-pw"));
    assert_eq!(mode_of(&file), 0o600);

    let out = assert_cli_ok(&cli(
        &file,
        &["verify", "alice", "--password-stdin"],
        Some("second-pw\n"),
    ));
    assert!(out.contains("correct"), "{out}");
    assert_cli_error(
        &cli(
            &file,
            &["verify", "alice", "--password-stdin"],
            Some("first-pw\n"),
        ),
        "does not match",
    );
    assert_cli_error(
        &cli(
            &file,
            &["verify", "nobody", "--password-stdin"],
            Some("x\n"),
        ),
        "no user nobody",
    );

    // A refused (non-bcrypt) entry and a broken line: `list` names their
    // lines on stderr, and lists only the usable users on stdout.
    let mut text = after.clone();
    text.push_str("old:$apr1$abcdefgh$0123456789abcdefghijkl\nnot a user line\n");
    std::fs::write(&file, &text).expect("write");
    let o = cli(&file, &["list"], None);
    let out = assert_cli_ok(&o);
    assert_eq!(out, "alice\nbob\n");
    let (_, err) = out_text(&o);
    let shown = file.display();
    assert!(
        err.contains(&format!(
            "{shown}:5: user \"old\" has a Apache MD5 ($apr1$) hash"
        )) && err.contains("regproxy htpasswd add old"),
        "{err}"
    );
    assert!(err.contains(&format!("{shown}:6: ")), "{err}");

    // Remove; removing again is an error with a hint.
    let out = assert_cli_ok(&cli(&file, &["remove", "bob"], None));
    assert_eq!(out, format!("removed user bob from {shown}\n"));
    assert_cli_error(&cli(&file, &["remove", "bob"], None), "no user bob");
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(
        text.starts_with("# team registry users\n\nalice:$2y$04$"),
        "{text}"
    );
    assert!(
        text.contains("old:$apr1$") && text.contains("not a user line"),
        "kept: {text}"
    );
    assert!(!text.contains("bob:"), "{text}");
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(assert_cli_ok(&cli(&file, &["list"], None)), "alice\n");

    // Refused input.
    assert_cli_error(
        &cli(
            &file,
            &["add", "a:b", "--cost", "4", "--password-stdin"],
            Some("pw\n"),
        ),
        "invalid user name",
    );
    assert_cli_error(
        &cli(
            &file,
            &["add", "carol", "--cost", "4", "--password-stdin"],
            Some("\n"),
        ),
        "the password is empty",
    );
    let o = cli(
        &file,
        &["add", "carol", "--cost", "3", "--password-stdin"],
        Some("pw\n"),
    );
    assert!(!o.status.success() && !out_text(&o).1.contains("panicked"));
    assert_eq!(assert_cli_ok(&cli(&file, &["list"], None)), "alice\n");

    // A new file is created 0600.
    let fresh = dir.path().join("sub/new.htpasswd");
    assert_cli_ok(&cli(
        &fresh,
        &["add", "zoe", "--cost", "4", "--password-stdin"],
        Some("zoe-pw\n"),
    ));
    assert_eq!(mode_of(&fresh), 0o600);
}

// ---------------------------------------------------------------------------
// First start
// ---------------------------------------------------------------------------

#[test]
fn the_first_start_creates_admin_once_and_the_password_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        "tls:\n  enabled: false\nauth:\n  htpasswd: users/htpasswd\n",
    )
    .expect("write config");
    let htpasswd_file = dir.path().join("users/htpasswd");
    let args = [
        "serve".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data".into(),
        dir.path().join("data").display().to_string(),
    ];
    let mut first = common::Regproxy::start_with_args(&args);
    let printed = first.startup_stdout().join("\n");
    let prefix = "regproxy: created user `admin` with password ";
    let line = first
        .startup_stdout()
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no admin line before the listening line:\n{printed}"))
        .clone();
    let rest = &line[prefix.len()..];
    let (password, tail) = rest.split_once(' ').expect("password then text");
    assert_eq!(
        tail,
        format!(
            "(in {}); it is shown only this once",
            htpasswd_file.display()
        )
    );
    assert!(password.len() >= 16, "a weak password: {password:?}");
    assert_eq!(printed.matches(password).count(), 1, "{printed}");
    assert_eq!(mode_of(&htpasswd_file), 0o600);
    let stored = std::fs::read_to_string(&htpasswd_file).expect("read htpasswd");
    assert!(stored.starts_with("admin:$2y$"), "{stored}");
    assert!(!stored.contains(password));

    let v2 = format!("{}/v2/", first.url());
    let get = |password: &str| {
        common::http_request(
            "GET",
            &v2,
            &[("Authorization", basic_value("admin", password).as_str())],
            None,
        )
    };
    assert_eq!(get(password).status, 200);
    assert_eq!(get("wrong").status, 401);
    assert_eq!(common::http_get(&v2).status, 401);
    first.terminate(Duration::from_secs(10));
    assert!(
        !first.logs().contains(password),
        "the admin password reached the log"
    );

    // The second start prints nothing, and the same password still works.
    let second = common::Regproxy::start_with_args(&args);
    let again = second.startup_stdout().join("\n");
    assert!(!again.contains("created user"), "{again}");
    assert!(!again.contains(password), "{again}");
    assert!(second.extra_stdout().iter().all(|l| !l.contains(password)));
    let v2 = format!("{}/v2/", second.url());
    let r = common::http_request(
        "GET",
        &v2,
        &[("Authorization", basic_value("admin", password).as_str())],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        std::fs::read_to_string(&htpasswd_file).expect("read"),
        stored,
        "the second start changed the users"
    );
    assert!(!second.logs().contains(password));
}
