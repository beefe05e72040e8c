//! The UI attacked: registry content pushed to be rendered as markup (and
//! sizes chosen to overflow a sum), a hidden repository asked for by every
//! other spelling of its path over HTTP/1.1 (raw bytes, no client
//! normalising) and HTTP/2 over TLS, a session cookie tried on the API, a
//! planted cookie kept across sign-in, rights taken away while a session
//! lives, and a notice that echoed whatever the query said.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use super::common::{self, http_request, RawImage, RAW_INDEX, RAW_MANIFEST};
use super::fixture::{self, eventually, image, set_cookie, site, site_pushing, Client, PASSWORD};

/// Markup in every context: element, attribute (both quotes), script.
const XSS: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>'";

fn raw_image(doc: serde_json::Value, media_type: &'static str) -> RawImage {
    let manifest = serde_json::to_vec(&doc).expect("manifest JSON");
    RawImage {
        digest: common::digest_of(&manifest),
        blobs: Vec::new(),
        manifest,
        media_type,
    }
}

/// What an attacker with push rights in team-a stores: a config with
/// markup for its platform and time, an index with markup in its
/// platforms and annotations and children of absurd size, an image with
/// foreign layers of absurd size, a referrer with markup as its type.
fn push_hostile(url: &str) {
    let repo = "team-a/hostile";
    let cfg = image(XSS, XSS, Some(XSS), XSS, 100);
    common::push_image(url, repo, Some("cfg"), &cfg);
    let child = image("linux", "amd64", None, "2026-05-05T00:00:00Z", 100);
    common::push_image(url, repo, None, &child);
    let entry = json!({
        "mediaType": RAW_MANIFEST, "digest": child.digest, "size": i64::MAX,
        "platform": {"os": XSS, "architecture": XSS, "variant": XSS},
        "annotations": {"org.opencontainers.image.title": XSS},
    });
    let idx = raw_image(
        json!({
            "schemaVersion": 2, "mediaType": RAW_INDEX, "manifests": [entry.clone(), entry],
            "annotations": {"org.opencontainers.image.description": XSS},
        }),
        RAW_INDEX,
    );
    common::put_manifest(url, repo, "idx", &idx);
    let foreign = json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": format!("sha256:{}", "f".repeat(64)), "size": i64::MAX,
        "urls": ["https://example.invalid/layer"],
    });
    let config = &child.blobs[0];
    let big = raw_image(
        json!({
            "schemaVersion": 2, "mediaType": RAW_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1.len()},
            "layers": [foreign.clone(), foreign],
        }),
        RAW_MANIFEST,
    );
    common::put_manifest(url, repo, "foreign", &big);
    let sbom = raw_image(
        json!({
            "schemaVersion": 2, "mediaType": RAW_MANIFEST, "artifactType": XSS,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config.0, "size": config.1.len()},
            "layers": [],
            "subject": {"mediaType": RAW_MANIFEST, "digest": child.digest, "size": child.manifest.len()},
            "annotations": {"org.opencontainers.image.title": XSS},
        }),
        RAW_MANIFEST,
    );
    common::put_manifest(url, repo, &sbom.digest, &sbom);
    common::put_manifest(url, repo, "child", &child);
}

fn assert_inert(what: &str, r: &common::HttpResponse) {
    let text = r.text();
    assert_eq!(r.status, 200, "{what}: {text}");
    for raw in ["<script>alert", "<img src=x", "\"><img"] {
        assert!(!text.contains(raw), "{what} renders {raw:?} raw:\n{text}");
    }
}

#[test]
fn hostile_registry_content_is_shown_as_text_and_absurd_sizes_do_not_break_pages() {
    let site = site_pushing(|d| fixture::config_yaml(d, false), push_hostile);
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let repo = alice.get("/ui/repo/team-a/hostile");
    assert_inert("the tag list", &repo);
    assert!(
        repo.text().contains("&lt;script&gt;alert(1)"),
        "the hostile strings are shown, as text: {}",
        repo.text()
    );
    for tag in ["cfg", "idx", "foreign", "child"] {
        let path = format!("/ui/repo/team-a/hostile/-/manifest/{tag}");
        assert_inert(&path, &alice.get(&path));
    }
    assert!(alice.get("/ui/").text().contains("team-a/hostile"));
}

/// One HTTP/1.1 request written byte for byte (no client cleans the
/// path): the status and the body.
pub fn raw_request(addr: std::net::SocketAddr, head: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(head).expect("write the request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// Other spellings of `/ui/repo/NAME...`: case, doubled and encoded
/// slashes, dot segments, trailing slashes.
fn spellings(name: &str) -> Vec<String> {
    let (ns, leaf) = name.split_once('/').expect("a two-part name");
    let up = name.to_uppercase();
    let enc = name.replace('/', "%2F");
    let mut v = Vec::new();
    for tail in ["", "/-/manifest/1", "/-/delete/1"] {
        v.extend([
            format!("/ui/repo/{name}{tail}"),
            format!("/UI/repo/{name}{tail}"),
            format!("/ui//repo/{name}{tail}"),
            format!("/ui/repo//{name}{tail}"),
            format!("/ui/repo/{up}{tail}"),
            format!("/ui/repo/{enc}{tail}"),
            format!("/ui/repo/{ns}%2f{leaf}{tail}"),
            format!("/ui/repo/{ns}/./{leaf}{tail}"),
            format!("/ui/repo/team-a/../{name}{tail}"),
            format!("/ui/repo/team-a/app/../../{name}{tail}"),
            format!("/ui/repo/{name}/{tail}"),
            format!("/ui/repo/{name}%2F-%2Fmanifest%2F1"),
            format!("/ui/repo/{name}{}", tail.replace('/', "%2F")),
        ]);
    }
    v.push(format!("/ui/%72epo/{name}"));
    v
}

#[test]
fn every_spelling_of_a_hidden_repository_is_answered_as_a_missing_one() {
    let site = site(false);
    let bob = Client::sign_in(&site.server.url(), "bob", PASSWORD);
    let csrf = bob.csrf();
    let cookie = format!("regproxy_session={}", bob.session);
    let addr = site.server.addr();
    let body = format!("csrf={csrf}");
    for (hidden, missing) in spellings("team-b/secret")
        .into_iter()
        .zip(spellings("team-b/nothin"))
    {
        for method in ["GET", "HEAD", "POST"] {
            let req = |path: &str| {
                let head = format!(
                    "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncookie: {cookie}\r\nconnection: close\r\n\
                     content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                raw_request(addr, head.as_bytes())
            };
            let (h, m) = (req(&hidden), req(&missing));
            assert!(
                !h.1.contains("secret") && !h.1.contains("2026-01-01"),
                "{method} {hidden} shows it: {h:?}"
            );
            assert!(h.0 >= 300, "{method} {hidden}: {h:?}");
            assert_eq!(h, m.clone(), "{method} {hidden} vs {missing}");
        }
    }
    assert_eq!(
        fixture::api_manifest_status(&site, "team-b/secret", "1"),
        200,
        "no spelling deleted it"
    );
}

/// Signs in over HTTP/2 and TLS with curl: the session cookie's value.
fn curl_sign_in(ca: &std::path::Path, site: &fixture::Site, user: &str) -> String {
    let cookie_in = |head: &str, name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("set-cookie: {name}=")))
            .and_then(|v| v.split(';').next())
            .unwrap_or_else(|| panic!("no {name} cookie in {head}"))
            .to_string()
    };
    let login = site.url("/ui/login");
    let (status, head) = common::curl(ca, &["--http2", "-D", "-", "-o", "/dev/null", &login]);
    assert_eq!(status, 200, "{head}");
    assert!(head.starts_with("HTTP/2"), "{head}");
    let token = cookie_in(&head, "regproxy_login");
    let body = fixture::form_body(&[("csrf", &token), ("user", user), ("password", PASSWORD)]);
    let cookie = format!("cookie: regproxy_login={token}");
    let args = [
        "--http2",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &cookie,
        "--data",
        &body,
        &login,
    ];
    let (status, head) = common::curl(ca, &args);
    assert_eq!(status, 303, "{head}");
    cookie_in(&head, "regproxy_session")
}

#[test]
fn over_http2_and_tls_a_hidden_repository_is_a_missing_one() {
    let tls = site(true);
    let ca = tls.dir.path().join("certs/ca.crt");
    let cookie = format!(
        "cookie: regproxy_session={}",
        curl_sign_in(&ca, &tls, "bob")
    );
    let get = |path: &str, head: bool| {
        let url = tls.url(path);
        let mut args = vec!["--http2", "--path-as-is", "-H", &cookie];
        if head {
            args.push("-I");
        }
        args.push(&url);
        common::curl(&ca, &args)
    };
    let (status, page) = get("/ui/repo/team-a/app", false);
    assert_eq!(status, 200, "{page}");
    for (hidden, missing) in spellings("team-b/secret")
        .into_iter()
        .zip(spellings("team-b/nothin"))
    {
        for head in [false, true] {
            let (h, m) = (get(&hidden, head), get(&missing, head));
            assert!(h.0 >= 300 && !h.1.contains("2026-01-01"), "{hidden}: {h:?}");
            let strip = |s: &str| {
                s.lines()
                    .filter(|l| !l.starts_with("date:") && !l.starts_with("content-length:"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!((h.0, strip(&h.1)), (m.0, strip(&m.1)), "{hidden}");
        }
    }
}

#[test]
fn a_session_cookie_opens_no_api_and_a_planted_cookie_does_not_survive_sign_in() {
    let site = site(false);
    let base = site.server.url();
    let alice = Client::sign_in(&base, "alice", PASSWORD);
    let cookie = format!("regproxy_session={}", alice.session);
    for (method, path) in [
        ("GET", "/v2/"),
        ("GET", "/v2/_catalog"),
        ("GET", "/v2/team-a/app/tags/list"),
        ("GET", "/v2/team-a/app/manifests/1.0"),
        ("DELETE", "/v2/team-a/app/manifests/old"),
    ] {
        let r = http_request(method, &site.url(path), &[("cookie", &cookie)], None);
        assert_eq!(r.status, 401, "{method} {path} with only a UI cookie");
    }
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "old"),
        200
    );

    // A cookie planted before sign-in (made up, or the attacker's own
    // live session) is replaced by a new one, and a made-up one never
    // becomes valid.
    let mallory = Client::sign_in(&base, "bob", PASSWORD);
    for planted in ["attacker-chosen-value", mallory.session.as_str()] {
        let form = http_request("GET", &site.url("/ui/login"), &[], None);
        let token = fixture::cookie_value(&set_cookie(&form, "regproxy_login").expect("cookie"));
        // A return address in the URL or the form is not followed.
        let r = http_request(
            "POST",
            &site.url("/ui/login?next=//evil.example&return=https://evil.example"),
            &[
                (
                    "cookie",
                    &format!("regproxy_session={planted}; regproxy_login={token}"),
                ),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(
                fixture::form_body(&[
                    ("csrf", &token),
                    ("user", "alice"),
                    ("password", PASSWORD),
                    ("next", "/\\evil.example"),
                ])
                .into_bytes(),
            ),
        );
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(r.header("location").as_deref(), Some("/ui/"));
        let new = fixture::cookie_value(&set_cookie(&r, "regproxy_session").expect("a session"));
        assert_ne!(new, planted, "the planted cookie was kept");
        let planted = Client {
            base: base.clone(),
            session: planted.to_string(),
        };
        let r = planted.get("/ui/");
        assert!(
            !r.text().contains("Signed in as <strong>alice"),
            "{}",
            r.text()
        );
    }
}

#[test]
fn no_redirect_leaves_the_ui() {
    let site = site(false);
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    for path in [
        "/ui/login?next=//evil.example",
        "/ui/logout?next=https://evil.example",
        "/ui/login?next=%2F%5Cevil.example",
    ] {
        let r = alice.get(path);
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location").as_deref(), Some("/ui/"), "{path}");
    }
    let r = http_request("GET", &site.url("/ui/?next=//evil.example"), &[], None);
    assert_eq!(r.header("location").as_deref(), Some("/ui/login"));
}

#[test]
fn rights_taken_away_in_the_rules_end_at_once_for_a_live_session() {
    let site = site(false);
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let admin = Client::sign_in(&site.server.url(), "admin", PASSWORD);
    assert_eq!(alice.get("/ui/repo/team-a/app").status, 200);
    assert!(alice.get("/ui/repo/team-a/app").text().contains("Delete"));
    assert_eq!(admin.get("/ui/gc").status, 200);
    let yaml = fixture::config_yaml(site.dir.path(), false)
        .replace("  team-a: [alice, bob]", "  team-a: [bob]")
        .replace(
            "    - subjects: [user:alice]",
            "    - subjects: [user:nobody]",
        )
        .replace("  admins: [admin]", "  admins: [nobody]");
    common::write_config(site.dir.path(), &yaml);
    eventually("alice loses team-a", || {
        alice.get("/ui/repo/team-a/app").status == 404
    });
    assert!(!alice.get("/ui/").text().contains("team-a/app"));
    let csrf = alice.csrf();
    let r = alice.post("/ui/repo/team-a/app/-/delete/old", &[("csrf", &csrf)]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(admin.get("/ui/gc").status, 403, "no longer an admin");
}

#[test]
fn the_deleted_notice_shows_only_a_reference_not_what_the_link_says() {
    let site = site(false);
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let lie = "everything. Your account is locked: call +1-555-0100";
    let q = fixture::form_body(&[("deleted", lie)]);
    let page = alice.get(&format!("/ui/repo/team-a/app?{q}")).text();
    assert!(!page.contains("+1-555-0100"), "{page}");
    let page = alice.get("/ui/repo/team-a/app?deleted=old").text();
    assert!(page.contains("Deleted old."), "{page}");
}
