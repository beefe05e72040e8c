//! LDAP login against a real OpenLDAP `slapd` (see `common::slapd`): both
//! modes, every kind of group, escaping, TLS with a private CA, a directory
//! that is down, slow or silent, and the service-connection pool.
//!
//! Long file: one test per LDAP mode, group kind and failure, sharing the fixture setup at the top.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use regproxy::auth::identity::{Source, Unavailable, Verdict};
use regproxy::auth::ldap::{LdapBackend, LdapConfig};
use regproxy::auth::secret::Secret;

fn search_yaml(url: &str) -> String {
    format!(
        "url: {url}\nbind_dn: {LDAP_SVC_DN}\nbind_password: {LDAP_SVC_PW}\n\
         user_base: {LDAP_PEOPLE}\ngroup_base: {LDAP_GROUPS}\n"
    )
}

fn direct_yaml(url: &str) -> String {
    format!(
        "url: {url}\nuser_dn_template: \"uid={{username}},{LDAP_PEOPLE}\"\ngroup_base: {LDAP_GROUPS}\n"
    )
}

/// Everything every test in this binary logged (TRACE and up). One global
/// subscriber, installed before the first LDAP call of any test: thread-local
/// subscribers race with callsite-interest caching when tests run in parallel.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
}

fn config(yaml: &str) -> LdapConfig {
    captured_logs();
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}:\n{yaml}"))
}

fn backend(yaml: &str) -> LdapBackend {
    LdapBackend::new(config(yaml)).unwrap_or_else(|e| panic!("{e}:\n{yaml}"))
}

fn password_of(user: &str) -> &'static str {
    LDAP_USERS
        .iter()
        .find(|(u, _)| *u == user)
        .expect("known user")
        .1
}

async fn login(b: &LdapBackend, user: &str, password: &str) -> Result<Verdict, Unavailable> {
    b.authenticate(user, &Secret::new(password)).await
}

/// The groups of an accepted login; panics on any other answer.
async fn groups_of(b: &LdapBackend, user: &str) -> Vec<String> {
    match login(b, user, password_of(user)).await {
        Ok(Verdict::Accepted(id)) => {
            assert_eq!((id.user.as_str(), id.source), (user, Source::Ldap));
            id.groups
        }
        other => panic!("{user}: expected Accepted, got {other:?}"),
    }
}

fn is_rejected(r: &Result<Verdict, Unavailable>) -> bool {
    matches!(r, Ok(Verdict::Rejected))
}

fn is_unknown(r: &Result<Verdict, Unavailable>) -> bool {
    matches!(r, Ok(Verdict::UnknownUser))
}

/// The reason of an `Unavailable`; panics on a verdict.
fn unavailable(r: Result<Verdict, Unavailable>) -> String {
    match r {
        Err(u) => u.reason,
        Ok(v) => panic!("expected Unavailable, got {v:?}"),
    }
}

#[tokio::test]
async fn search_then_bind_collects_groups_of_every_kind() {
    let slapd = Slapd::start(SlapdOpts::default());
    let b = backend(&search_yaml(&slapd.url()));
    // groupOfNames (member), groupOfUniqueNames (uniqueMember), posixGroup (memberUid)
    assert_eq!(groups_of(&b, "alice").await, ["ops", "team-a", "team-b"]);
    assert_eq!(groups_of(&b, "bob").await, ["team-b"]);
    assert_eq!(groups_of(&b, "carol").await, ["ops"]);
    // memberOf on the user's entry names a group that is no entry at all
    assert_eq!(groups_of(&b, "dave").await, ["legacy"]);
    let no_member_of = format!("{}member_of_attribute: \"\"\n", search_yaml(&slapd.url()));
    assert!(groups_of(&backend(&no_member_of), "dave").await.is_empty());

    assert!(b.user_exists("alice").await.unwrap());
    assert!(!b.user_exists("nobody").await.unwrap());
    // Two entries with uid=twin: ambiguous, so no login at all.
    assert!(!b.user_exists("twin").await.unwrap());
    assert!(is_unknown(&login(&b, "twin", password_of("twin")).await));

    // The memberof overlay fills memberOf for a group added now; without
    // group_base, memberOf is the only source.
    slapd.add_ldif(&format!(
        "dn: cn=team-m,{LDAP_GROUPS}\nobjectClass: groupOfNames\ncn: team-m\n\
         member: uid=alice,{LDAP_PEOPLE}\n"
    ));
    let only_member_of =
        search_yaml(&slapd.url()).replace(&format!("group_base: {LDAP_GROUPS}\n"), "");
    assert_eq!(
        groups_of(&backend(&only_member_of), "alice").await,
        ["team-m"]
    );
    assert_eq!(
        groups_of(&b, "alice").await,
        ["ops", "team-a", "team-b", "team-m"]
    );
}

#[tokio::test]
async fn direct_bind_logs_in_with_the_users_own_rights() {
    let slapd = Slapd::start(SlapdOpts::default());
    let b = backend(&direct_yaml(&slapd.url()));
    assert_eq!(groups_of(&b, "alice").await, ["ops", "team-a", "team-b"]);
    assert_eq!(groups_of(&b, "dave").await, ["legacy"]);
    assert!(is_rejected(&login(&b, "alice", "bob-pw").await));
    // A DN that does not exist is invalidCredentials too.
    assert!(is_rejected(&login(&b, "nobody", "whatever").await));
    assert!(
        b.user_exists("anyone").await.unwrap(),
        "direct bind cannot tell"
    );
}

#[tokio::test]
async fn wrong_password_is_rejected_and_unknown_user_is_unknown() {
    let slapd = Slapd::start(SlapdOpts::default());
    let b = backend(&search_yaml(&slapd.url()));
    assert!(is_rejected(&login(&b, "alice", "bob-pw").await));
    assert!(is_rejected(&login(&b, "alice", "alice-pw ").await));
    assert!(is_unknown(&login(&b, "nobody", "alice-pw").await));
    assert!(is_unknown(&login(&b, "Alice2", "alice-pw").await));
    // Case-insensitive uid matching is the directory's: still alice's
    // password, and the identity is the directory's spelling, `alice`, so
    // rules written for alice apply.
    match login(&b, "ALICE", "alice-pw").await {
        Ok(Verdict::Accepted(id)) => assert_eq!(id.user, "alice"),
        other => panic!("ALICE with alice's password: {other:?}"),
    }
}

#[tokio::test]
async fn empty_password_never_binds() {
    let slapd = Slapd::start(SlapdOpts {
        allow_unauthenticated_bind: true,
        ..SlapdOpts::default()
    });
    // The trap: this directory accepts a DN with an empty password.
    let alice_dn = format!("uid=alice,{LDAP_PEOPLE}");
    assert_eq!(slapd.whoami(&alice_dn, "").as_deref(), Some("anonymous"));
    assert_eq!(slapd.whoami(&alice_dn, "wrong"), None);

    let before = slapd.total_connections();
    for yaml in [search_yaml(&slapd.url()), direct_yaml(&slapd.url())] {
        let b = backend(&yaml);
        assert!(is_rejected(&login(&b, "alice", "").await));
        assert!(is_rejected(&login(&b, "nobody", "").await));
    }
    // Only the counter query itself connected: no bind was attempted.
    assert_eq!(slapd.total_connections(), before + 1);

    // Nor do unusable usernames reach a server (this one refuses everything).
    let b = backend(&search_yaml(&closed_ldap_url()));
    assert!(is_rejected(&login(&b, "alice", "").await));
    for user in ["", "alice\n", "al\0ice", "bob\u{7f}", &"a".repeat(257)] {
        assert!(is_rejected(&login(&b, user, "x").await), "{user:?}");
        assert!(!b.user_exists(user).await.unwrap(), "{user:?}");
    }
}

#[tokio::test]
async fn ldap_injection_does_not_log_anyone_in() {
    let slapd = Slapd::start(SlapdOpts::default());
    let search = backend(&search_yaml(&slapd.url()));
    let direct = backend(&direct_yaml(&slapd.url()));
    // Unescaped, `al*` would find exactly alice and bind as her.
    for user in [
        "*",
        "al*",
        "alice*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice)(|(objectClass=*)",
    ] {
        assert!(
            is_unknown(&login(&search, user, "alice-pw").await),
            "{user:?}"
        );
        assert!(!search.user_exists(user).await.unwrap(), "{user:?}");
        assert!(
            is_rejected(&login(&direct, user, "alice-pw").await),
            "{user:?}"
        );
    }
    let dn_tricks = [&format!("alice,{LDAP_PEOPLE}"), "alice+cn=Alice", "alice\\"];
    for user in dn_tricks {
        assert!(
            is_rejected(&login(&direct, user, "alice-pw").await),
            "{user:?}"
        );
    }
    // Names with filter and DN specials work for their real owners; a*b's
    // DN in the group filter is escaped too (unescaped, `member=uid=a*b,...`
    // would be a substring filter and find nothing).
    for b in [&search, &direct] {
        assert!(groups_of(b, "o'brien").await.is_empty());
        assert_eq!(groups_of(b, "a*b").await, ["team-a"]);
        assert_eq!(groups_of(b, "smith, j").await, ["team-b"]);
        assert!(is_rejected(&login(b, "a*b", "alice-pw").await));
    }
}

#[tokio::test]
async fn ldaps_and_starttls_trust_only_the_ca_file() {
    let slapd = Slapd::start(SlapdOpts {
        tls: true,
        ..SlapdOpts::default()
    });
    let ca = slapd.ca_path();
    let ldaps = format!(
        "{}ca_file: {}\n",
        search_yaml(&slapd.ldaps_url()),
        ca.display()
    );
    assert_eq!(
        groups_of(&backend(&ldaps), "alice").await,
        ["ops", "team-a", "team-b"]
    );
    let starttls = format!(
        "{}starttls: true\nca_file: {}\n",
        search_yaml(&slapd.url()),
        ca.display()
    );
    assert_eq!(groups_of(&backend(&starttls), "bob").await, ["team-b"]);
    let direct_tls = format!(
        "{}ca_file: {}\n",
        direct_yaml(&slapd.ldaps_url()),
        ca.display()
    );
    assert!(is_rejected(
        &login(&backend(&direct_tls), "alice", "nope").await
    ));

    // Another CA: the certificate is refused, as Unavailable (not the user's fault).
    let other = temp_dir("regproxy-other-ca-");
    let mut names = regproxy::tls::certs::SubjectNames::default();
    names.add_host("127.0.0.1").unwrap();
    regproxy::tls::certs::issue(other.path(), &names, 30, false).unwrap();
    let other_ca = other.path().join("ca.crt");
    for yaml in [
        format!(
            "{}ca_file: {}\n",
            search_yaml(&slapd.ldaps_url()),
            other_ca.display()
        ),
        format!(
            "{}starttls: true\nca_file: {}\n",
            direct_yaml(&slapd.url()),
            other_ca.display()
        ),
    ] {
        let reason = unavailable(login(&backend(&yaml), "alice", "alice-pw").await);
        assert!(
            reason.contains("certificate") && reason.contains("127.0.0.1"),
            "{reason}"
        );
    }
    // No CA file, no TLS: the system roots are not used.
    let err = LdapBackend::new(config(&search_yaml(&slapd.ldaps_url()))).unwrap_err();
    assert!(err.contains("ca_file"), "{err}");
}

#[tokio::test]
async fn directory_down_is_unavailable_and_the_pool_recovers() {
    let mut slapd = Slapd::start(SlapdOpts::default());
    let search = backend(&search_yaml(&slapd.url()));
    let direct = backend(&direct_yaml(&slapd.url()));
    assert_eq!(groups_of(&search, "carol").await, ["ops"]);

    slapd.stop();
    for b in [&search, &direct] {
        let reason = unavailable(login(b, "carol", "carol-pw").await);
        assert!(
            reason.contains(&slapd.url()) && reason.contains("refused"),
            "{reason}"
        );
        assert!(
            !reason.contains("carol-pw") && !reason.contains(LDAP_SVC_PW),
            "{reason}"
        );
    }
    assert!(search.user_exists("carol").await.is_err());

    slapd.restart();
    assert_eq!(groups_of(&search, "carol").await, ["ops"]);
    assert_eq!(groups_of(&direct, "carol").await, ["ops"]);
    // A restart between two logins: the pooled connection is dead and is
    // replaced without a failed login.
    slapd.restart();
    assert_eq!(groups_of(&search, "carol").await, ["ops"]);
    assert!(search.user_exists("carol").await.unwrap());
}

#[tokio::test]
async fn silent_or_closed_servers_are_unavailable_within_the_timeout() {
    let silent = SilentServer::start();
    let ca_dir = temp_dir("regproxy-ldap-ca-");
    let mut names = regproxy::tls::certs::SubjectNames::default();
    names.add_host("127.0.0.1").unwrap();
    regproxy::tls::certs::issue(ca_dir.path(), &names, 30, false).unwrap();
    let ca = ca_dir.path().join("ca.crt").display().to_string();
    let yamls = [
        search_yaml(&silent.url("ldap")),
        direct_yaml(&silent.url("ldap")),
        format!("{}ca_file: {ca}\n", search_yaml(&silent.url("ldaps"))),
        format!(
            "{}starttls: true\nca_file: {ca}\n",
            direct_yaml(&silent.url("ldap"))
        ),
    ];
    let backends: Vec<LdapBackend> = yamls
        .iter()
        .map(|y| backend(&format!("{y}timeout_secs: 1\n")))
        .collect();
    let started = Instant::now();
    let logins = backends.iter().map(|b| async move {
        let r = tokio::time::timeout(Duration::from_secs(10), login(b, "alice", "alice-pw")).await;
        (r.expect("authenticate hung"), started.elapsed())
    });
    for (r, elapsed) in futures_util::future::join_all(logins).await {
        let reason = unavailable(r);
        assert!(reason.contains("did not answer within 1 s"), "{reason}");
        assert!(reason.contains(&silent.addr.to_string()), "{reason}");
        assert!(
            elapsed >= Duration::from_millis(900),
            "{elapsed:?}: {reason}"
        );
        assert!(
            elapsed < Duration::from_millis(2500),
            "{elapsed:?}: {reason}"
        );
    }
    let started = Instant::now();
    let reason =
        unavailable(login(&backend(&search_yaml(&closed_ldap_url())), "alice", "pw").await);
    assert!(reason.contains("refused the connection"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn service_connections_are_pooled() {
    let slapd = Slapd::start(SlapdOpts::default());
    // Each login: user search + group search on the service account, and
    // the user's bind on a fresh connection.
    let pooled = backend(&search_yaml(&slapd.url()));
    let before = slapd.total_connections();
    for _ in 0..20 {
        assert_eq!(groups_of(&pooled, "bob").await, ["team-b"]);
    }
    let opened = slapd.total_connections() - before;
    // 20 user binds + 1 service connection + the counter query
    assert_eq!(opened, 22, "connections opened for 20 logins");

    // The counter does see service connections: without a pool, two per login.
    let unpooled = backend(&format!("{}pool_size: 0\n", search_yaml(&slapd.url())));
    let before = slapd.total_connections();
    for _ in 0..5 {
        assert_eq!(groups_of(&unpooled, "bob").await, ["team-b"]);
    }
    assert_eq!(slapd.total_connections() - before, 5 + 10 + 1);
}

#[tokio::test]
async fn passwords_never_reach_logs_or_reasons() {
    let slapd = Slapd::start(SlapdOpts::default());
    let dir = temp_dir("regproxy-ldap-pwfile-");
    let pw_file = dir.path().join("svc.pw");
    std::fs::write(&pw_file, format!("{LDAP_SVC_PW}\n")).unwrap();
    let yaml = search_yaml(&slapd.url()).replace(
        &format!("bind_password: {LDAP_SVC_PW}\n"),
        &format!("bind_password_file: {}\n", pw_file.display()),
    );
    let b = backend(&yaml);
    assert_eq!(groups_of(&b, "alice").await, ["ops", "team-a", "team-b"]);
    assert!(is_rejected(&login(&b, "alice", "Wrong-Secret-1").await));
    let down = backend(&search_yaml(&closed_ldap_url()));
    let reason = unavailable(login(&down, "alice", "Down-Secret-2").await);
    let silent = SilentServer::start();
    let slow = backend(&format!(
        "{}timeout_secs: 1\n",
        direct_yaml(&silent.url("ldap"))
    ));
    let reason2 = unavailable(login(&slow, "alice", "Slow-Secret-3").await);

    // Every test's log lines so far, this test's included.
    let log = String::from_utf8(captured_logs().0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("LDAP login accepted") && log.contains("LDAP bind refused"),
        "{log}"
    );
    assert!(log.contains("refused the connection"), "{log}");
    let shown = format!(
        "{log}{reason}{reason2}{b:?}{:?}",
        config(&search_yaml("ldap://x"))
    );
    for secret in [
        "alice-pw",
        "Wrong-Secret-1",
        "Down-Secret-2",
        "Slow-Secret-3",
        LDAP_SVC_PW,
    ] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }

    // An empty password file is a setup error, not an empty bind.
    std::fs::write(&pw_file, "\n").unwrap();
    let err = LdapBackend::new(config(&yaml)).unwrap_err();
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn config_defaults_and_problems() {
    let c = config(&search_yaml("ldap://127.0.0.1:389"));
    assert_eq!(c.user_filter, "(uid={username})");
    assert_eq!(
        c.group_filter,
        "(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
    );
    assert_eq!(
        (
            c.group_name_attribute.as_str(),
            c.member_of_attribute.as_str()
        ),
        ("cn", "memberOf")
    );
    assert_eq!((c.timeout_secs, c.pool_size, c.starttls), (5, 4, false));
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert!(
        config(&direct_yaml("ldaps://dir:636")).validate()
            == ["ldaps:// and StartTLS need ldap.ca_file (the CA of the directory's certificate)"]
    );
    let unknown = serde_yaml::from_str::<LdapConfig>("url: ldap://x\nbind_pasword: x\n");
    assert!(unknown.unwrap_err().to_string().contains("bind_pasword"));

    let mut c = config(&search_yaml("http://dir:389"));
    c.bind_password_file = Some("/pw".into());
    c.user_filter = "uid=x".into();
    c.user_dn_template = Some("uid=x,dc=org".into());
    c.timeout_secs = 0;
    let problems = c.validate().join("\n");
    for want in [
        "ldap.url",
        "not both",
        "user_filter",
        "user_dn_template (direct",
        "must contain {username}",
        "timeout_secs",
    ] {
        assert!(problems.contains(want), "missing {want:?} in:\n{problems}");
    }
    let mut c = config(&direct_yaml("ldap://dir"));
    c.starttls = true;
    c.bind_password = Some(Secret::new("x"));
    c.group_filter = "(cn=all)".into();
    let problems = c.validate().join("\n");
    for want in ["need ldap.ca_file", "without ldap.bind_dn", "group_filter"] {
        assert!(problems.contains(want), "missing {want:?} in:\n{problems}");
    }
    assert!(LdapBackend::new(c).is_err());
    let mut c = config(&search_yaml("ldap://dir"));
    c.user_base = None;
    assert!(
        c.validate().join("\n").contains("needs both"),
        "{:?}",
        c.validate()
    );
    let missing_ca = format!(
        "{}ca_file: /nonexistent/ca.crt\n",
        search_yaml("ldaps://dir")
    );
    let err = LdapBackend::new(config(&missing_ca)).unwrap_err();
    assert!(err.contains("/nonexistent/ca.crt"), "{err}");
}
