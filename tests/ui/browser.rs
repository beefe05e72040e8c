//! The UI in a real browser (headless Chromium through chromedriver):
//! sign in, see only permitted repositories, search, see the tags and
//! platforms of a multi-arch image and a referrer, delete a tag as a
//! permitted user and be refused as another, collect garbage as an admin,
//! sign out. Screenshots of the main pages go to `target/ui-screenshots/`.

use super::fixture::{self, site, PASSWORD};
use super::webdriver::Browser;

fn sign_in(b: &Browser, base: &str, user: &str) {
    b.goto(&format!("{base}/ui/login"));
    b.wait_for("#sign-in");
    b.type_into("#user", user);
    b.type_into("#password", PASSWORD);
    b.click("#sign-in");
    b.wait_for("#signed-in-as");
    assert!(b.text_of("#signed-in-as").contains(user), "{}", b.text());
}

fn sign_out(b: &Browser) {
    b.click("#sign-out");
    b.wait_for("#sign-in");
}

#[test]
fn browse_delete_and_sign_out_in_chromium() {
    let site = site(false);
    let base = site.server.url();
    let b = Browser::start();

    // A browser at `/` lands on the sign-in page.
    b.goto(&format!("{base}/"));
    b.wait_for("#sign-in");
    assert!(
        b.current_url().ends_with("/ui/login"),
        "{}",
        b.current_url()
    );
    b.screenshot("01-sign-in");

    // A wrong password: the form again, with a message.
    b.type_into("#user", "alice");
    b.type_into("#password", "wrong");
    b.click("#sign-in");
    b.wait_for("#problem");
    assert!(b
        .text_of("#problem")
        .contains("Invalid user name or password"));

    // alice sees team-a and tools, never team-b.
    sign_in(&b, &base, "alice");
    b.wait_for("a.repo");
    let text = b.text();
    for want in ["team-a/app", "team-a/multi", "tools", "team-a/"] {
        assert!(text.contains(want), "catalog lacks {want}:\n{text}");
    }
    assert!(
        !b.source().contains("team-b"),
        "alice must not see team-b:\n{text}"
    );
    b.screenshot("02-repositories");

    // Search (a GET form).
    b.type_into("#q", "multi");
    b.click("form.search button");
    b.wait_for_url("q=multi");
    b.wait_for("#q");
    assert_eq!(b.count("a.repo"), 1, "{}", b.text());
    assert!(b.text().contains("team-a/multi"));

    // The multi-arch image: its platforms on the repository page and on
    // the manifest page.
    b.goto(&format!("{base}/ui/repo/team-a/multi"));
    b.wait_for("#tags");
    let row = b.text_of("tr.tag[data-tag=\"latest\"]");
    assert!(
        row.contains("linux/amd64") && row.contains("linux/arm/v6"),
        "{row}"
    );
    let pull = format!("docker pull {}/team-a/multi:latest", site.server.host());
    assert!(
        b.text().contains(&pull),
        "no pull line {pull}:\n{}",
        b.text()
    );
    b.screenshot("03-repository-multi-arch");
    b.goto(&format!("{base}/ui/repo/team-a/multi/-/manifest/latest"));
    b.wait_for("#platforms");
    let platforms = b.text_of("#platforms");
    assert!(
        platforms.contains("linux/amd64") && platforms.contains("linux/arm/v6"),
        "{platforms}"
    );
    assert!(
        platforms.contains("2026-12-01T08:05:00Z"),
        "created of arm/v6: {platforms}"
    );
    assert!(b.text_of("#digest").contains(&site.pushed.multi.digest));
    b.screenshot("04-manifest-multi-arch");

    // A tag with a referrer (an SBOM), its size and created time.
    b.goto(&format!("{base}/ui/repo/team-a/app/-/manifest/1.0"));
    b.wait_for("#referrers");
    let referrers = b.text_of("#referrers");
    assert!(
        referrers.contains("application/vnd.example.sbom"),
        "{referrers}"
    );
    assert!(b.text().contains("2026-11-30T10:00:00Z"), "{}", b.text());
    b.screenshot("05-manifest-referrers");

    // alice deletes the tag `old`, with a confirmation.
    b.goto(&format!("{base}/ui/repo/team-a/app"));
    b.wait_for("#tags");
    assert!(b.text().contains("Storage used"), "{}", b.text());
    let row = b.text_of("tr.tag[data-tag=\"1.0\"]");
    assert!(
        row.contains("1 referrer(s)") && row.contains("293.5 KiB"),
        "{row}"
    );
    b.screenshot("06-repository");
    b.click("tr.tag[data-tag=\"old\"] a.danger");
    b.wait_for("#confirm-delete");
    assert!(b.text_of("#confirm-text").contains("team-a/app:old"));
    b.screenshot("07-confirm-delete");
    b.click("#confirm-delete");
    b.wait_for("#notice");
    assert!(b.text_of("#notice").contains("Deleted old"), "{}", b.text());
    assert_eq!(b.count("tr.tag[data-tag=\"old\"]"), 0, "the row is gone");
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "old"),
        404
    );
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "1.0"),
        200
    );

    // A repository alice may not pull is a repository that does not exist.
    b.goto(&format!("{base}/ui/repo/team-b/secret"));
    b.wait_for("#problem");
    assert!(b.text().contains("no such repository"), "{}", b.text());
    assert!(!b.text().contains("secret:1"));

    // Connect a machine: the login line for this host and port.
    b.goto(&format!("{base}/ui/connect"));
    b.wait_for("#login-line");
    assert_eq!(
        b.text_of("#login-line"),
        format!("docker login {}", site.server.host())
    );
    b.screenshot("08-connect");

    sign_out(&b);
    b.goto(&format!("{base}/ui/"));
    b.wait_for("#sign-in");
    assert!(
        b.current_url().ends_with("/ui/login"),
        "signed out: {}",
        b.current_url()
    );

    // bob may pull team-a but not delete: no delete links, and the
    // confirmation by direct URL is refused.
    sign_in(&b, &base, "bob");
    b.goto(&format!("{base}/ui/repo/team-a/app"));
    b.wait_for("#tags");
    assert_eq!(b.count("a.danger"), 0, "no delete links for bob");
    b.goto(&format!("{base}/ui/repo/team-a/app/-/delete/1.0"));
    b.wait_for("#problem");
    assert!(
        b.text_of("#problem").contains("You may not delete"),
        "{}",
        b.text()
    );
    b.screenshot("09-delete-refused");
    assert_eq!(
        fixture::api_manifest_status(&site, "team-a/app", "1.0"),
        200
    );
    sign_out(&b);

    // The admin runs a dry run, then a collection.
    sign_in(&b, &base, "admin");
    b.goto(&format!("{base}/ui/gc"));
    b.wait_for("#gc-none");
    b.click("#gc-dry-run");
    b.wait_for("#gc-report");
    assert!(b.text_of("#gc-report").contains("Dry run"), "{}", b.text());
    b.screenshot("10-gc-dry-run");
    b.click("#gc-run");
    b.wait_for_text("#gc-report", "Collection");
    sign_out(&b);
}
