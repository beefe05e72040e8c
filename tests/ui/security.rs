//! The UI's security, with an HTTP client: no page reveals a repository
//! the user may not pull; state-changing forms need the session's CSRF
//! token; cookies carry their flags (Secure over TLS); a session ends on
//! sign-out and when its user is removed or changes password; pages are
//! escaped and carry security headers; failed sign-ins are limited and
//! passwords never logged.

use std::time::Duration;

use super::common::{self, http_request};
use super::fixture::{self, csrf_of, eventually, set_cookie, site, Client, PASSWORD};

#[test]
fn no_page_reveals_a_repository_the_user_may_not_pull() {
    let site = site(false);
    let bob = Client::sign_in(&site.server.url(), "bob", PASSWORD);
    let catalog = bob.get("/ui/");
    assert_eq!(catalog.status, 200);
    let text = catalog.text();
    assert!(
        text.contains("team-a/app") && text.contains("tools"),
        "{text}"
    );
    assert!(!text.contains("team-b"), "catalog: {text}");
    let logs = site.server.logs();
    assert!(
        logs.contains("user=\"bob\" method=GET path=/ui/ "),
        "the access log names the user:\n{logs}"
    );
    let search = bob.get("/ui/?q=team-b");
    assert_eq!(search.status, 200);
    assert!(
        !search.text().contains("team-b/secret"),
        "{}",
        search.text()
    );
    assert!(bob
        .get("/ui/?q=secret")
        .text()
        .contains("No repository you may pull matches"));

    // An existing repository bob may not pull and one that does not exist
    // get the same answer, byte for byte, on every page.
    let csrf = bob.csrf();
    for (hidden, missing) in [
        ("/ui/repo/team-b/secret", "/ui/repo/team-b/nothing"),
        (
            "/ui/repo/team-b/secret/-/manifest/1",
            "/ui/repo/team-b/nothing/-/manifest/1",
        ),
        (
            "/ui/repo/team-b/secret/-/delete/1",
            "/ui/repo/team-b/nothing/-/delete/1",
        ),
    ] {
        let (h, m) = (bob.get(hidden), bob.get(missing));
        assert_eq!(h.status, 404, "{hidden}: {}", h.text());
        assert_eq!(
            (h.status, h.text()),
            (m.status, m.text()),
            "{hidden} vs {missing}"
        );
        assert!(!h.text().contains("secret"), "{}", h.text());
    }
    let digest = &site.pushed.app.digest;
    let r = bob.post("/ui/repo/team-b/secret/-/delete/1", &[("csrf", &csrf)]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        fixture::api_manifest_status(&site, "team-b/secret", "1"),
        200
    );
    // A tag page of a permitted repository that does not exist is a 404 too.
    assert_eq!(bob.get("/ui/repo/team-a/app/-/manifest/nope").status, 404);
    assert_eq!(
        bob.get(&format!("/ui/repo/team-a/app/-/manifest/{digest}"))
            .status,
        200
    );
    // bob may pull team-a but not delete there: 403, and nothing changes.
    let r = bob.post("/ui/repo/team-a/app/-/delete/1.0", &[("csrf", &csrf)]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "1.0"),
        200
    );
    // Not an admin: no GC.
    assert_eq!(bob.get("/ui/gc").status, 403);
    assert_eq!(
        bob.post("/ui/gc", &[("csrf", &csrf), ("mode", "run")])
            .status,
        403
    );

    // Without a session, no page shows data: the sign-in page instead.
    for path in [
        "/ui/",
        "/ui/repo/team-a/app",
        "/ui/repo/team-a/app/-/manifest/1.0",
        "/ui/gc",
    ] {
        let r = http_request("GET", &site.url(path), &[], None);
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location").as_deref(), Some("/ui/login"), "{path}");
    }
}

#[test]
fn forms_without_the_session_csrf_token_are_refused() {
    let site = site(false);
    let base = site.server.url();
    let alice = Client::sign_in(&base, "alice", PASSWORD);
    let bob = Client::sign_in(&base, "bob", PASSWORD);
    let admin = Client::sign_in(&base, "admin", PASSWORD);
    let path = "/ui/repo/team-a/app/-/delete/old";
    for (what, pairs) in [
        ("no token", vec![]),
        ("an empty token", vec![("csrf", String::new())]),
        ("a wrong token", vec![("csrf", "x".repeat(43))]),
        ("another session's token", vec![("csrf", bob.csrf())]),
    ] {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = alice.post(path, &pairs);
        assert_eq!(r.status, 403, "delete with {what}: {}", r.text());
        assert!(
            r.text()
                .contains("security token is missing or does not belong"),
            "{}",
            r.text()
        );
        assert_eq!(
            fixture::api_manifest_status(&site, "team-a/app", "old"),
            200,
            "{what}"
        );
        let r = alice.post("/ui/logout", &pairs);
        assert_eq!(r.status, 403, "sign-out with {what}");
        let r = admin.post("/ui/gc", &[&pairs[..], &[("mode", "dry-run")]].concat());
        assert_eq!(r.status, 403, "GC with {what}");
    }
    assert_eq!(
        alice.get("/ui/").status,
        200,
        "the refused sign-out changed nothing"
    );
    assert!(admin.get("/ui/gc").text().contains("No collection has run"));

    // With the token, the same forms work.
    let r = alice.post(path, &[("csrf", &alice.csrf())]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "old"),
        404
    );
    let r = admin.post("/ui/gc", &[("csrf", &admin.csrf()), ("mode", "dry-run")]);
    assert_eq!(r.status, 303);
    assert!(admin.get("/ui/gc").text().contains("Dry run"));

    // The sign-in form needs the token of its own cookie.
    let form = http_request("GET", &site.url("/ui/login"), &[], None);
    let token = csrf_of(&form.text());
    let body = fixture::form_body(&[("csrf", &token), ("user", "alice"), ("password", PASSWORD)]);
    let ct = ("content-type", "application/x-www-form-urlencoded");
    for cookie in ["", "regproxy_login=other"] {
        let r = http_request(
            "POST",
            &site.url("/ui/login"),
            &[ct, ("cookie", cookie)],
            Some(body.clone().into_bytes()),
        );
        assert_eq!(r.status, 403, "sign-in with cookie {cookie:?}");
        assert!(set_cookie(&r, "regproxy_session").is_none());
    }
}

fn assert_flags(set: &str, secure: bool) {
    for want in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="] {
        assert!(set.contains(want), "{want} missing: {set}");
    }
    assert_eq!(
        set.contains("; Secure"),
        secure,
        "Secure over TLS only: {set}"
    );
}

#[test]
fn cookies_carry_their_flags_and_pages_their_headers() {
    let site = site(false);
    let r = Client::try_sign_in(&site.server.url(), "alice", PASSWORD);
    let session = set_cookie(&r, "regproxy_session").expect("session cookie");
    assert_flags(&session, false);
    assert!(
        fixture::cookie_value(&session).len() >= 43,
        "a long random id: {session}"
    );
    let login = http_request("GET", &site.url("/ui/login"), &[], None);
    assert_flags(
        &set_cookie(&login, "regproxy_login").expect("sign-in cookie"),
        false,
    );

    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let page = alice.get("/ui/repo/team-a/app");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("CSP");
    for want in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(want), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(
        !page.text().contains("<script>") && !page.text().contains(" style="),
        "no inline script or style"
    );

    // What a user types comes back escaped.
    let evil = "<script>alert(1)</script>";
    let r = alice.get(&format!(
        "/ui/?q={}",
        fixture::form_body(&[("x", evil)]).trim_start_matches("x=")
    ));
    assert!(!r.text().contains(evil), "{}", r.text());
    assert!(
        r.text().contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.text()
    );
    let r = Client::try_sign_in(&site.server.url(), evil, "x");
    assert_eq!(r.status, 401);
    assert!(
        !r.text().contains(evil) && r.text().contains("&lt;script&gt;"),
        "{}",
        r.text()
    );
}

/// The text of an HTML page with maud's escapes undone.
fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn over_tls_cookies_are_secure_and_the_connect_page_prints_the_trust_commands() {
    let tls = site(true);
    let ca = tls.dir.path().join("certs/ca.crt");
    let url = tls.server.url();
    // Over TLS the cookies are also Secure (curl trusts the test's CA).
    let (status, head) = common::curl(
        &ca,
        &[
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("{url}/ui/login"),
        ],
    );
    assert_eq!(status, 200);
    let line = head
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie: regproxy_login="))
        .unwrap_or_else(|| panic!("no sign-in cookie: {head}"));
    assert_flags(line, true);
    let token = fixture::cookie_value(line.split_once(": ").map_or("", |(_, v)| v));
    let body = fixture::form_body(&[("csrf", &token), ("user", "alice"), ("password", PASSWORD)]);
    let (status, head) = common::curl(
        &ca,
        &[
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &format!("cookie: regproxy_login={token}"),
            "--data",
            &body,
            &format!("{url}/ui/login"),
        ],
    );
    assert_eq!(status, 303, "{head}");
    let line = head
        .lines()
        .find(|l| {
            l.to_lowercase()
                .starts_with("set-cookie: regproxy_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie: {head}"));
    assert_flags(line, true);

    // "Connect a machine" shows what `regproxy trust` prints for the host
    // and port the browser used: the fingerprint and the whole block.
    let (status, page) = common::curl(&ca, &[&format!("{url}/ui/connect")]);
    assert_eq!(status, 200);
    let page = unescape(&page);
    let out = common::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_regproxy"))
            .args([
                "trust",
                "--host",
                "127.0.0.1",
                "--port",
                &tls.server.port().to_string(),
                "--certs",
            ])
            .arg(tls.dir.path().join("certs")),
        Duration::from_secs(20),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let fingerprint = printed
        .lines()
        .find_map(|l| l.strip_prefix("CA fingerprint (SHA-256): "))
        .expect("a fingerprint line");
    assert!(page.contains(fingerprint), "{page}");
    let block: Vec<&str> = printed
        .lines()
        .skip_while(|l| l.trim() != "(")
        .take_while(|l| l.trim() != ")")
        .collect();
    assert!(block.len() > 8, "{printed}");
    for line in block {
        assert!(page.contains(line), "the page lacks {line:?}:\n{page}");
    }
    assert!(page.contains(&format!("docker login {}", tls.server.host())));
    assert!(page.contains("href=\"/ca.crt\""), "a CA download link");
}

#[test]
fn sessions_end_on_sign_out_and_when_the_user_changes() {
    let site = site(false);
    let base = site.server.url();
    let alice = Client::sign_in(&base, "alice", PASSWORD);
    assert_eq!(alice.get("/ui/").status, 200);
    let r = alice.post("/ui/logout", &[("csrf", &alice.csrf())]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/ui/login"));
    let gone = set_cookie(&r, "regproxy_session").expect("the cookie is cleared");
    assert!(gone.contains("Max-Age=0"), "{gone}");
    // The old cookie, replayed, no longer works.
    let r = alice.get("/ui/");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/ui/login"));

    // A new password ends bob's session; removing carol ends hers.
    let bob = Client::sign_in(&base, "bob", PASSWORD);
    let carol = Client::sign_in(&base, "carol", PASSWORD);
    assert_eq!(bob.get("/ui/").status, 200);
    assert_eq!(carol.get("/ui/").status, 200);
    let htpasswd = site.dir.path().join("htpasswd");
    common::add_users(&htpasswd, &[("bob", "a new password")]);
    regproxy::auth::htpasswd::edit(&htpasswd, |f| {
        f.remove("carol");
    })
    .expect("remove carol");
    eventually("bob's session ends", || bob.get("/ui/").status == 303);
    eventually("carol's session ends", || carol.get("/ui/").status == 303);
    // A new sign-in with the new password works.
    let bob = Client::sign_in(&base, "bob", "a new password");
    assert_eq!(bob.get("/ui/").status, 200);
}

#[test]
fn failed_sign_ins_are_limited_and_passwords_never_logged() {
    let site = site(false);
    let base = site.server.url();
    let secret = "hunter2-never-logged";
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(Client::try_sign_in(&base, "alice", secret).status);
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    let r = Client::try_sign_in(&base, "alice", PASSWORD);
    assert_eq!(r.status, 429, "paused even with the right password");
    assert!(
        r.text().contains("Too many failed sign-ins"),
        "{}",
        r.text()
    );
    let logs = site.server.logs();
    assert!(
        !logs.contains(secret) && !logs.contains(PASSWORD),
        "a password in the log"
    );
    assert!(logs.contains("failed login"), "failures are audited");
}

/// Without logins (`--no-auth`) the UI needs no sign-in and allows what
/// the API allows, and its forms still need the CSRF token of the
/// anonymous session it hands out.
#[test]
fn without_logins_the_ui_is_open_and_its_forms_still_need_the_token() {
    let dir = common::temp_dir("regproxy-ui-open-");
    let server = common::Regproxy::start(dir.path(), &[]);
    let img = fixture::image("linux", "amd64", None, "2026-03-01T00:00:00Z", 100);
    common::push_image(&server.url(), "any/app", Some("1"), &img);
    let r = http_request("GET", &format!("{}/ui/", server.url()), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("any/app"));
    assert!(!r.text().contains("Sign out"));
    let session =
        fixture::cookie_value(&set_cookie(&r, "regproxy_session").expect("an anonymous session"));
    let open = Client {
        base: server.url(),
        session,
    };
    let r = open.post("/ui/repo/any/app/-/delete/1", &[]);
    assert_eq!(r.status, 403, "no token");
    let token = csrf_of(&open.get("/ui/repo/any/app/-/delete/1").text());
    let r = open.post("/ui/repo/any/app/-/delete/1", &[("csrf", &token)]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(common::manifest_status(&server.url(), "any/app", "1"), 404);
}
