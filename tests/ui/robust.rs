//! The UI under odd and concurrent use: huge and non-UTF-8 query strings,
//! a repository of thousands of tags, an index whose children were
//! deleted, two deletes of one tag at once, GC buttons pressed together,
//! and a real collection refused until a dry run was looked at.

use std::time::Instant;

use super::common;
use super::fixture::{self, image, site, site_pushing, Client, PASSWORD};
use super::hostile::raw_request;

#[test]
fn huge_and_broken_query_strings_get_an_answer_not_a_failure() {
    let site = site(false);
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let huge = "a".repeat(60_000);
    for path in [
        format!("/ui/?q={huge}"),
        format!("/ui/repo/team-a/app?deleted={huge}"),
        "/ui/?q=%FF%FE%00%C0%AF".to_string(),
        "/ui/repo/team-a/app?deleted=%FF%00".to_string(),
    ] {
        let r = alice.get(&path);
        assert!(
            r.status < 500,
            "{}: {}",
            &path[..40.min(path.len())],
            r.status
        );
    }
    let addr = site.server.addr();
    let cookie = format!("regproxy_session={}", alice.session);
    for path in [
        &b"/ui/?q=\xff\xfe"[..],
        b"/ui/repo/team-a/app?deleted=\xc3\x28",
    ] {
        let mut head = b"GET ".to_vec();
        head.extend_from_slice(path);
        head.extend_from_slice(
            format!(" HTTP/1.1\r\nhost: {addr}\r\ncookie: {cookie}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        );
        let (status, body) = raw_request(addr, &head);
        assert!(status < 500, "{path:?}: {status} {body}");
    }
    assert_eq!(alice.get("/ui/").status, 200, "the server still answers");
}

const MANY: usize = 1000;

#[test]
fn a_repository_of_thousands_of_tags_and_an_index_without_its_children_render() {
    let site = site_pushing(
        |d| fixture::config_yaml(d, false),
        |url| {
            let img = image("linux", "amd64", None, "2026-06-01T00:00:00Z", 10);
            common::push_image(url, "team-a/many", Some("t0"), &img);
            for i in 1..MANY {
                common::put_manifest(url, "team-a/many", &format!("t{i}"), &img);
            }
        },
    );
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let began = Instant::now();
    let r = alice.get("/ui/repo/team-a/many");
    eprintln!(
        "figure: the page of {MANY} tags took {} ms, {} bytes",
        began.elapsed().as_millis(),
        r.body.len()
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text().matches("<tr class=\"tag\"").count(), MANY);

    // The index's children deleted through the API: its pages still
    // render, the children shown without details, their links 404.
    let multi = &site.pushed.multi;
    let index: serde_json::Value = serde_json::from_slice(&multi.manifest).expect("index");
    let children: Vec<String> = index["manifests"]
        .as_array()
        .expect("children")
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_string())
        .collect();
    let admin = basic("admin");
    for d in &children {
        let r = common::http_request(
            "DELETE",
            &site.url(&format!("/v2/team-a/multi/manifests/{d}")),
            &[("authorization", &admin)],
            None,
        );
        assert_eq!(r.status, 202, "delete child {d}: {}", r.text());
    }
    assert_eq!(alice.get("/ui/repo/team-a/multi").status, 200);
    let page = alice.get("/ui/repo/team-a/multi/-/manifest/latest");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("linux/arm/v6"), "{}", page.text());
    let r = alice.get(&format!("/ui/repo/team-a/multi/-/manifest/{}", children[0]));
    assert_eq!(r.status, 404);
}

/// An index as large as a manifest may be, every entry the same child
/// manifest, itself nearly as large: a page must read the child once, not
/// once per entry (28,000 reads of 4 MiB did not finish).
#[test]
fn an_index_repeating_one_huge_child_renders_without_reading_it_per_entry() {
    let site = site_pushing(
        |d| fixture::config_yaml(d, false),
        |url| {
            let base = image("linux", "amd64", None, "2026-07-01T00:00:00Z", 10);
            let mut doc: serde_json::Value =
                serde_json::from_slice(&base.manifest).expect("manifest");
            doc["annotations"] = serde_json::json!({"pad": "x".repeat(4_000_000)});
            let manifest = serde_json::to_vec(&doc).expect("JSON");
            let child = common::RawImage {
                digest: common::digest_of(&manifest),
                manifest,
                ..base
            };
            common::push_image(url, "team-a/huge", None, &child);
            let entry = serde_json::json!({
                "mediaType": common::RAW_MANIFEST, "digest": child.digest,
                "size": child.manifest.len(),
                "platform": {"os": "linux", "architecture": "amd64"},
            });
            let per = serde_json::to_vec(&entry).expect("JSON").len() + 1;
            let n = (4 * 1024 * 1024 - 200) / per;
            let doc = serde_json::json!({
                "schemaVersion": 2, "mediaType": common::RAW_INDEX,
                "manifests": vec![entry; n],
            });
            let manifest = serde_json::to_vec(&doc).expect("JSON");
            let index = common::RawImage {
                digest: common::digest_of(&manifest),
                blobs: Vec::new(),
                manifest,
                media_type: common::RAW_INDEX,
            };
            common::put_manifest(url, "team-a/huge", "many", &index);
        },
    );
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let r = alice.get("/ui/repo/team-a/huge");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = alice.get("/ui/repo/team-a/huge/-/manifest/many");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("2026-07-01T00:00:00Z"));
}

/// One small image tagged many times, with one referrer as large as a
/// manifest may be: a page must read that referrer once, not once per tag.
#[test]
fn many_tags_of_one_image_with_a_huge_referrer_render_without_reading_it_per_tag() {
    let site = site_pushing(
        |d| fixture::config_yaml(d, false),
        |url| {
            let img = image("linux", "amd64", None, "2026-08-01T00:00:00Z", 10);
            common::push_image(url, "team-a/tagged", Some("t0"), &img);
            let sbom = common::RawImage::new(vec![b"sbom".to_vec()], Some(&img));
            let mut doc: serde_json::Value =
                serde_json::from_slice(&sbom.manifest).expect("manifest");
            doc["annotations"] = serde_json::json!({"pad": "x".repeat(4_000_000)});
            let manifest = serde_json::to_vec(&doc).expect("JSON");
            let sbom = common::RawImage {
                digest: common::digest_of(&manifest),
                manifest,
                ..sbom
            };
            common::push_image(url, "team-a/tagged", None, &sbom);
            for i in 1..1500 {
                common::put_manifest(url, "team-a/tagged", &format!("t{i}"), &img);
            }
        },
    );
    let alice = Client::sign_in(&site.server.url(), "alice", PASSWORD);
    let r = alice.get("/ui/repo/team-a/tagged");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().matches("1 referrer(s)").count(), 1500);
}

fn basic(user: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"));
    format!("Basic {b}")
}

#[test]
fn two_deletes_of_one_tag_and_gc_buttons_pressed_together_fail_cleanly() {
    let site = site(false);
    let base = site.server.url();
    let alice = Client::sign_in(&base, "alice", PASSWORD);
    let csrf = alice.csrf();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| alice.post("/ui/repo/team-a/app/-/delete/old", &[("csrf", &csrf)])))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("thread").status)
            .collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 404),
        "{statuses:?}"
    );
    assert!(statuses.contains(&303), "{statuses:?}");
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "old"),
        404
    );

    let admin = Client::sign_in(&base, "admin", PASSWORD);
    let csrf = admin.csrf();
    let r = admin.post("/ui/gc", &[("csrf", &csrf), ("mode", "dry-run")]);
    assert_eq!(r.status, 303);
    let page = admin.get("/ui/gc").text();
    let confirms = fixture::field_of(&page, "confirms");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let (admin, csrf, confirms) = (&admin, &csrf, &confirms);
                s.spawn(move || {
                    let mode = if i == 0 { "dry-run" } else { "run" };
                    admin
                        .post(
                            "/ui/gc",
                            &[("csrf", csrf), ("mode", mode), ("confirms", confirms)],
                        )
                        .status
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(admin.get("/ui/gc").status, 200);
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "1.0"),
        200
    );
}

#[test]
fn a_real_collection_is_refused_until_a_dry_run_is_confirmed() {
    let site = site(false);
    let admin = Client::sign_in(&site.server.url(), "admin", PASSWORD);
    let csrf = admin.csrf();
    // Straight to the real run, as a script or a forged button would.
    let r = admin.post("/ui/gc", &[("csrf", &csrf), ("mode", "run")]);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("dry run first"), "{}", r.text());
    assert!(admin.get("/ui/gc").text().contains("No collection has run"));

    let r = admin.post("/ui/gc", &[("csrf", &csrf), ("mode", "dry-run")]);
    assert_eq!(r.status, 303);
    let page = admin.get("/ui/gc").text();
    let confirms = fixture::field_of(&page, "confirms");
    let stale = "2000-01-01T00:00:00Z";
    let r = admin.post(
        "/ui/gc",
        &[("csrf", &csrf), ("mode", "run"), ("confirms", stale)],
    );
    assert_eq!(r.status, 409, "a run confirming another dry run");
    let run = [
        ("csrf", csrf.as_str()),
        ("mode", "run"),
        ("confirms", &confirms),
    ];
    let r = admin.post("/ui/gc", &run);
    assert_eq!(r.status, 303, "{}", r.text());
    let page = admin.get("/ui/gc").text();
    assert!(page.contains("Collection"), "{page}");
    assert!(!page.contains("name=\"confirms\""), "{page}");
    let r = admin.post("/ui/gc", &run);
    assert_eq!(r.status, 409, "the same dry run confirms one run only");
}
