//! Signing in to the UI with LDAP users (the real slapd of
//! `common::slapd`): the directory's groups decide what a user sees, a
//! group change shows on the next pages, and a new password ends the
//! session (at most `auth.cache_secs` late).

use super::common::{Slapd, SlapdOpts, LDAP_GROUPS, LDAP_PEOPLE, LDAP_SVC_DN, LDAP_SVC_PW};
use super::fixture::{eventually, site_with, Client};

fn ldap_yaml(dir: &std::path::Path, url: &str) -> String {
    [
        "tls:".to_string(),
        "  enabled: false".into(),
        "auth:".into(),
        "  order: [ldap]".into(),
        "  cache_secs: 1".into(),
        "  token:".into(),
        format!("    key: {}", dir.join("token.key").display()),
        "  ldap:".into(),
        format!("    url: {url}"),
        format!("    bind_dn: {LDAP_SVC_DN}"),
        format!("    bind_password: {LDAP_SVC_PW}"),
        format!("    user_base: {LDAP_PEOPLE}"),
        format!("    group_base: {LDAP_GROUPS}"),
        "    timeout_secs: 2".into(),
        "gc:".into(),
        "  interval: \"off\"".into(),
        "access:".into(),
        "  default: deny".into(),
        "  rules:".into(),
        "    - subjects: [group:team-a]".into(),
        "      repositories: [team-a]".into(),
        "      actions: [\"*\"]".into(),
        "    - subjects: [group:team-b]".into(),
        "      repositories: [team-b]".into(),
        "      actions: [pull]".into(),
        String::new(),
    ]
    .join("\n")
}

#[test]
fn ldap_users_see_what_their_groups_allow_until_the_directory_changes() {
    let slapd = Slapd::start(SlapdOpts::default());
    let site = site_with(|dir| ldap_yaml(dir, &slapd.url()));
    let base = site.server.url();

    let alice = Client::sign_in(&base, "alice", "alice-pw");
    let page = alice.get("/ui/").text();
    assert!(
        page.contains("team-a/app") && page.contains("team-b/secret"),
        "{page}"
    );
    let bob = Client::sign_in(&base, "bob", "bob-pw");
    let page = bob.get("/ui/").text();
    assert!(
        page.contains("team-b/secret") && !page.contains("team-a"),
        "{page}"
    );
    assert_eq!(bob.get("/ui/repo/team-a/app").status, 404);
    assert_eq!(Client::try_sign_in(&base, "bob", "wrong").status, 401);

    // Out of team-a: alice's pages no longer show it (same session).
    slapd.set_member("team-a", "alice", false);
    eventually("alice loses team-a", || {
        !alice.get("/ui/").text().contains("team-a/app")
    });
    assert_eq!(alice.get("/ui/repo/team-a/app").status, 404);
    assert!(alice.get("/ui/").text().contains("team-b/secret"));

    // A new password in the directory ends bob's session.
    slapd.set_password("bob", "bob-new-pw");
    eventually("bob's session ends", || bob.get("/ui/").status == 303);
    let bob = Client::sign_in(&base, "bob", "bob-new-pw");
    assert_eq!(bob.get("/ui/").status, 200);
}
