//! The server the UI tests look at: real images pushed over HTTP (a
//! single-platform image with an SBOM referrer, a multi-arch index of
//! linux/amd64 and linux/arm/v6, a repository of another team), then the
//! same data served with logins and per-team rules; and a client that signs
//! in through the forms as a browser does, keeping its cookies by hand.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{self, http_request, HttpResponse, RawImage, Regproxy};

pub const PASSWORD: &str = "correct horse 1";

/// Users: alice may do everything in team-a, bob may only pull there,
/// carol owns team-b, admin is an admin.
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "admin"];

const CONFIG_MEDIA: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image with a real config (`created`, platform) and one layer of
/// `size` random bytes.
pub fn image(os: &str, arch: &str, variant: Option<&str>, created: &str, size: usize) -> RawImage {
    let mut config = json!({
        "architecture": arch, "os": os, "created": created,
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Cmd": ["/bin/sh"]},
    });
    if let Some(v) = variant {
        config["variant"] = json!(v);
    }
    let config = serde_json::to_vec(&config).expect("config JSON");
    let layer = common::random_bytes(size);
    let blobs = vec![
        (common::digest_of(&config), config),
        (common::digest_of(&layer), layer),
    ];
    let desc = |(d, b): &(String, Vec<u8>), mt: &str| json!({"mediaType": mt, "digest": d, "size": b.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": common::RAW_MANIFEST,
        "config": desc(&blobs[0], CONFIG_MEDIA),
        "layers": [desc(&blobs[1], LAYER_MEDIA)],
    }))
    .expect("manifest JSON");
    RawImage {
        digest: common::digest_of(&manifest),
        blobs,
        manifest,
        media_type: common::RAW_MANIFEST,
    }
}

/// An index of `children` with their platforms.
pub fn index(children: &[(&RawImage, &str, &str, Option<&str>)]) -> RawImage {
    let manifests: Vec<_> = children
        .iter()
        .map(|(c, os, arch, variant)| {
            let mut platform = json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            json!({"mediaType": c.media_type, "digest": c.digest, "size": c.manifest.len(), "platform": platform})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": common::RAW_INDEX, "manifests": manifests,
    }))
    .expect("index JSON");
    RawImage {
        digest: common::digest_of(&manifest),
        blobs: Vec::new(),
        manifest,
        media_type: common::RAW_INDEX,
    }
}

/// What was pushed.
pub struct Pushed {
    pub app: RawImage,
    pub multi: RawImage,
}

/// A running server with logins over `dir`, and what it holds.
pub struct Site {
    pub server: Regproxy,
    pub pushed: Pushed,
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }
}

fn push_all(data: &Path, extra: impl FnOnce(&str)) -> Pushed {
    let open = Regproxy::start(data, &[]);
    let url = open.url();
    extra(&url);
    let app = image("linux", "amd64", None, "2026-11-30T10:00:00Z", 300_000);
    let old = image("linux", "amd64", None, "2025-01-02T03:04:05Z", 1000);
    let sbom = RawImage::new(vec![b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec()], Some(&app));
    let amd64 = image("linux", "amd64", None, "2026-12-01T08:00:00Z", 2000);
    let armv6 = image("linux", "arm", Some("v6"), "2026-12-01T08:05:00Z", 3000);
    let multi = index(&[
        (&amd64, "linux", "amd64", None),
        (&armv6, "linux", "arm", Some("v6")),
    ]);
    common::push_image(&url, "team-a/app", Some("1.0"), &app);
    common::push_image(&url, "team-a/app", Some("old"), &old);
    common::push_image(&url, "team-a/app", None, &sbom);
    common::push_image(&url, "team-a/multi", None, &amd64);
    common::push_image(&url, "team-a/multi", None, &armv6);
    common::push_image(&url, "team-a/multi", Some("latest"), &multi);
    common::push_image(
        &url,
        "team-b/secret",
        Some("1"),
        &image("linux", "amd64", None, "2026-01-01T00:00:00Z", 100),
    );
    common::push_image(
        &url,
        "tools",
        Some("v1"),
        &image("linux", "amd64", None, "2026-02-01T00:00:00Z", 100),
    );
    Pushed { app, multi }
}

/// The rules of the site.
pub fn config_yaml(dir: &Path, tls: bool) -> String {
    let tls = if tls {
        format!("tls:\n  dir: {}\n", dir.join("certs").display())
    } else {
        "tls:\n  enabled: false\n".to_string()
    };
    let rules = [
        "groups:",
        "  team-a: [alice, bob]",
        "  admins: [admin]",
        "access:",
        "  admins: [group:admins]",
        "  default: deny",
        "  rules:",
        "    - subjects: [user:alice]",
        "      repositories: [team-a]",
        "      actions: [\"*\"]",
        "    - subjects: [group:team-a]",
        "      repositories: [team-a, tools]",
        "      actions: [pull]",
        "    - subjects: [user:carol]",
        "      repositories: [team-b]",
        "      actions: [\"*\"]",
    ]
    .join("\n");
    format!(
        "{tls}auth:\n  htpasswd: {htpasswd}\n  token:\n    key: {key}\ngc:\n  interval: \"off\"\n{rules}\n",
        htpasswd = dir.join("htpasswd").display(),
        key = dir.join("token.key").display(),
    )
}

/// Pushes the images, then serves them with logins (plain HTTP, or TLS
/// with the built-in CA).
pub fn site(tls: bool) -> Site {
    site_with(|dir| config_yaml(dir, tls))
}

/// Pushes the images, adds the htpasswd users, then serves the data with
/// the config `yaml(dir)` makes.
pub fn site_with(yaml: impl FnOnce(&Path) -> String) -> Site {
    site_pushing(yaml, |_| {})
}

/// As [`site_with`], and `extra(url)` pushes more (over plain HTTP, before
/// logins are on).
pub fn site_pushing(yaml: impl FnOnce(&Path) -> String, extra: impl FnOnce(&str)) -> Site {
    let dir = common::temp_dir("regproxy-ui-");
    let data = dir.path().join("data");
    let pushed = push_all(&data, extra);
    let users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, PASSWORD)).collect();
    common::add_users(&dir.path().join("htpasswd"), &users);
    let config = common::write_config(dir.path(), &yaml(dir.path()));
    let server = common::serve_config(&config, &data);
    Site {
        server,
        pushed,
        dir,
    }
}

/// The value of a `Set-Cookie` for `name` in a response.
pub fn set_cookie(r: &HttpResponse, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The value of a cookie, from its `Set-Cookie` line.
pub fn cookie_value(set_cookie: &str) -> String {
    let first = set_cookie.split(';').next().unwrap_or("");
    first
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// The first hidden `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in: {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

/// The value of the first field named `name` of a page.
pub fn field_of(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} field in: {html}"));
    let rest = &html[at + key.len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

/// A browser without a browser: a session cookie sent by hand.
pub struct Client {
    pub base: String,
    pub session: String,
}

impl Client {
    /// Signs in through the form (the sign-in cookie and its token, then
    /// the POST); panics unless it succeeds.
    pub fn sign_in(base: &str, user: &str, password: &str) -> Client {
        let r = Self::try_sign_in(base, user, password);
        assert_eq!(r.status, 303, "sign-in as {user}: {}", r.text());
        let c = set_cookie(&r, "regproxy_session").expect("a session cookie");
        Client {
            base: base.to_string(),
            session: cookie_value(&c),
        }
    }

    pub fn try_sign_in(base: &str, user: &str, password: &str) -> HttpResponse {
        let form = http_request("GET", &format!("{base}/ui/login"), &[], None);
        assert_eq!(form.status, 200, "{}", form.text());
        let login = cookie_value(&set_cookie(&form, "regproxy_login").expect("sign-in cookie"));
        assert_eq!(
            csrf_of(&form.text()),
            login,
            "the form carries its cookie's token"
        );
        let body = form_body(&[("csrf", &login), ("user", user), ("password", password)]);
        http_request(
            "POST",
            &format!("{base}/ui/login"),
            &[
                ("cookie", &format!("regproxy_login={login}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(body.into_bytes()),
        )
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        let cookie = format!("regproxy_session={}", self.session);
        http_request(
            "GET",
            &format!("{}{path}", self.base),
            &[("cookie", &cookie)],
            None,
        )
    }

    pub fn post(&self, path: &str, pairs: &[(&str, &str)]) -> HttpResponse {
        let cookie = format!("regproxy_session={}", self.session);
        http_request(
            "POST",
            &format!("{}{path}", self.base),
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(form_body(pairs).into_bytes()),
        )
    }

    /// This session's CSRF token, from a page.
    pub fn csrf(&self) -> String {
        let r = self.get("/ui/connect");
        assert_eq!(r.status, 200);
        csrf_of(&r.text())
    }
}

pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `GET /v2/<repo>/manifests/<reference>` with Basic credentials: the API's
/// view, to check what the UI changed.
pub fn api_manifest_status(site: &Site, repo: &str, reference: &str) -> u16 {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"));
    http_request(
        "GET",
        &site.url(&format!("/v2/{repo}/manifests/{reference}")),
        &[
            ("authorization", &format!("Basic {basic}")),
            (
                "accept",
                &format!("{}, {}", common::RAW_MANIFEST, common::RAW_INDEX),
            ),
        ],
        None,
    )
    .status
}

/// Polls (bounded) until `f` is true.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("not within 15 s: {what}");
}
