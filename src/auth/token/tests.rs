//! Unit tests of the token service: signing, verification, the key file.

use super::*;
use base64::Engine as _;

fn service(dir: &Path) -> TokenService {
    TokenService::open(
        &dir.join("token.key"),
        "regproxy",
        "registry",
        Duration::from_secs(300),
        Duration::from_secs(3600),
    )
    .unwrap()
}

fn repo_scope() -> Vec<ResourceActions> {
    vec![ResourceActions::parse_scope("repository:team-a/app:pull,push").unwrap()]
}

#[test]
fn scopes() {
    let r = ResourceActions::parse_scope("repository:team-a/app:pull,push").unwrap();
    assert!(r.allows(&"team-a/app".parse().unwrap(), Action::Push));
    assert!(!r.allows(&"team-a/app".parse().unwrap(), Action::Delete));
    assert!(!r.allows(&"team-a/other".parse().unwrap(), Action::Pull));
    assert!(ResourceActions::parse_scope("registry:catalog:*").is_some());
    assert!(ResourceActions::parse_scope("repository:Bad/Name:pull").is_none());
    assert!(ResourceActions::parse_scope("nonsense").is_none());
}

/// Several instances started at once on an empty shared directory:
/// one key wins, and every instance signs and verifies with it.
#[test]
fn instances_starting_at_once_on_an_empty_dir_share_one_key() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let barrier = std::sync::Barrier::new(8);
        let kids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        service(dir.path()).kid().to_string()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = service(dir.path());
        assert!(
            kids.iter().all(|k| k == on_disk.kid()),
            "instances hold different keys: {kids:?}, the file has {}",
            on_disk.kid()
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["token.key"], "no temp file left");
    }
}

#[test]
fn round_trip_and_key_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let (t, _) = s
        .issue(
            "alice",
            Source::Htpasswd,
            Some("v".into()),
            vec![],
            repo_scope(),
            Use::Access,
        )
        .unwrap();
    let c = s.verify(&t, Use::Access).unwrap();
    assert_eq!(c.sub, "alice");
    assert_eq!(c.access, repo_scope());
    assert!(
        s.verify(&t, Use::Refresh).is_err(),
        "an access token is no refresh token"
    );
    let again = service(dir.path());
    assert_eq!(again.kid(), s.kid());
    again.verify(&t, Use::Access).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("token.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn forged_alg_none_expired_wrong_audience_and_wrong_key_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let (t, claims) = s
        .issue(
            "alice",
            Source::Ldap,
            None,
            vec![],
            repo_scope(),
            Use::Access,
        )
        .unwrap();

    // Forged signature: change the payload, keep the signature.
    let parts: Vec<&str> = t.split('.').collect();
    let mut forged = serde_json::to_value(&claims).unwrap();
    forged["sub"] = "mallory".into();
    assert!(s
        .verify(
            &format!("{}.{}.{}", parts[0], b64(&forged), parts[2]),
            Use::Access
        )
        .is_err());

    // alg: none
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg":"none","typ":"JWT"})),
        parts[1]
    );
    assert!(s.verify(&none, Use::Access).is_err());

    // Another key.
    let other_dir = tempfile::tempdir().unwrap();
    let other = service(other_dir.path());
    let (t2, _) = other
        .issue(
            "alice",
            Source::Ldap,
            None,
            vec![],
            repo_scope(),
            Use::Access,
        )
        .unwrap();
    assert!(s.verify(&t2, Use::Access).is_err());

    // Expired and wrong audience, signed with the right key.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(s.kid().to_string());
    let mut expired = claims.clone();
    expired.exp = now() - 3600;
    expired.nbf = now() - 7200;
    let t3 = jsonwebtoken::encode(&header, &expired, &s.encoding).unwrap();
    assert!(s.verify(&t3, Use::Access).is_err());
    let mut wrong_aud = claims.clone();
    wrong_aud.aud = "another-registry".into();
    let t4 = jsonwebtoken::encode(&header, &wrong_aud, &s.encoding).unwrap();
    assert!(s.verify(&t4, Use::Access).is_err());
    let mut wrong_iss = claims;
    wrong_iss.iss = "someone-else".into();
    let t5 = jsonwebtoken::encode(&header, &wrong_iss, &s.encoding).unwrap();
    assert!(s.verify(&t5, Use::Access).is_err());
}

#[test]
fn lifetimes_are_at_least_the_client_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let s = TokenService::open(
        &dir.path().join("k"),
        "i",
        "s",
        Duration::from_secs(5),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(s.ttl, Duration::from_secs(MIN_TOKEN_SECS));
}
