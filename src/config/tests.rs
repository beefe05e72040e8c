//! Config parsing: defaults, relative paths, every problem with its line,
//! access rules, auth and TLS settings.

use super::*;
use crate::auth::{Backend, Challenge};
use std::time::Duration;

#[test]
fn empty_file_gives_defaults() {
    let c = Config::parse("", Path::new("/etc/regproxy")).unwrap();
    assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(c.storage_root, PathBuf::from(DEFAULT_DATA));
}

#[test]
fn relative_root_is_relative_to_the_file() {
    let c = Config::parse(
        "storage:\n  filesystem:\n    root: data\n",
        Path::new("/srv"),
    )
    .unwrap();
    assert_eq!(c.storage_root, PathBuf::from("/srv/data"));
    assert_eq!(c.listen.port(), 5000);
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "\
listen: not-an-address
storage:
  filesystem:
    rooot: /x
    nested:
      deeper: 1
extra: true
trust_forwarded_headers: maybe
";
    let problems = Config::parse(text, Path::new(".")).unwrap_err();
    let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        vec![Some(1), Some(4), Some(5), Some(7), Some(8)],
        "{problems:#?}"
    );
    assert!(problems[1].message.contains("rooot"), "{problems:#?}");
    assert!(problems[3].message.contains("extra"));
}

#[test]
fn access_rules_with_lines() {
    let text = "\
groups:
  team-a: [alice]
access:
  rules:
    - subjects: [group:team-a]
      repositories: [team-a]
      actions: [pull, push]
    - subjects: [group:nobody]
      repositories: [x]
      actions: [pull]
";
    let p = Config::parse(text, Path::new(".")).unwrap_err();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].line, Some(8));
    assert!(p[0].message.contains("nobody"));
    let ok = text
        .replace("group:nobody", "group:team-a")
        .replace("[x]", "[team-a/app]")
        .replace("[pull]\n", "[push]\n");
    let c = Config::parse(&ok, Path::new(".")).unwrap();
    assert_eq!(c.warnings.len(), 1, "the second rule is shadowed");
    assert_eq!(c.warnings[0].line, Some(8));
    assert!(
        c.policy
            .decide(
                &acl::Subject {
                    user: Some("alice".into()),
                    groups: c.policy.groups_of("alice")
                },
                &"team-a/app".parse().unwrap(),
                crate::oci::Action::Push
            )
            .allowed
    );
}

#[test]
fn auth_settings() {
    let base = Path::new("/srv");
    let c = Config::parse("", base).unwrap();
    let a = c.auth.unwrap();
    assert_eq!(a.htpasswd, PathBuf::from("/srv/htpasswd"));
    assert_eq!(a.order, vec![Backend::Htpasswd]);
    assert!(Config::parse("auth:\n  enabled: false\n", base)
        .unwrap()
        .auth
        .is_none());
    let c = Config::parse(
        "auth:\n  challenge: basic\n  token:\n    expiry_secs: 120\n",
        base,
    )
    .unwrap();
    assert_eq!(c.auth.unwrap().challenge, Challenge::Basic);
    let p = Config::parse(
        "auth:\n  token:\n    expiry_secs: 5\n  order: [ldap]\n",
        base,
    )
    .unwrap_err();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].line, Some(3));
    assert_eq!(p[1].line, Some(4));
    assert_eq!(a.failure_limits, (5, 30));
    let c = Config::parse("auth:\n  failed_logins:\n    per_user: 50\n", base).unwrap();
    assert_eq!(c.auth.unwrap().failure_limits, (50, 30));
    let p = Config::parse("auth:\n  failed_logins:\n    per_address: 0\n", base).unwrap_err();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("at least 1"), "{p:?}");
    assert_eq!(p[0].line, Some(3));
}

#[test]
fn tls_modes() {
    let base = Path::new("/srv");
    let c = Config::parse("tls:\n  enabled: false\n", base).unwrap();
    assert_eq!(c.tls, TlsMode::Disabled);
    let c = Config::parse("tls:\n  cert: a.crt\n  key: /k/a.key\n", base).unwrap();
    assert_eq!(
        c.tls,
        TlsMode::Files {
            cert: "/srv/a.crt".into(),
            key: "/k/a.key".into(),
            ca: None
        }
    );
    let c = Config::parse("tls:\n  hosts: [registry.local, 10.0.0.2]\n", base).unwrap();
    let TlsMode::Auto { dir, extra } = c.tls else {
        panic!("auto expected")
    };
    assert_eq!(dir, PathBuf::from("/srv/certs"));
    assert_eq!(extra.dns, vec!["registry.local"]);
    assert_eq!(extra.ips.len(), 1);
    let problems = Config::parse("listen: 127.0.0.1:1\ntls:\n  cert: a.crt\n", base).unwrap_err();
    assert_eq!(problems[0].line, Some(2));
}

#[test]
fn syntax_error_has_a_line() {
    let problems = Config::parse("listen: [\nfoo", Path::new(".")).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].line.is_some());
}

#[test]
fn error_display_lists_file_and_lines() {
    let e = ConfigError::Invalid {
        path: "proxy.yaml".into(),
        problems: vec![Problem {
            line: Some(3),
            message: "unknown field `x`".into(),
        }],
    };
    assert_eq!(
        e.to_string(),
        "proxy.yaml has 1 problem(s):\n  proxy.yaml:3: unknown field `x`"
    );
}

#[test]
fn gc_and_upload_settings() {
    let c = Config::parse("", Path::new(".")).unwrap();
    assert_eq!(c.space, SpaceSettings::default());
    assert_eq!(c.space.gc_interval, Some(Duration::from_secs(86400)));
    assert_eq!(c.space.gc_grace, Duration::from_secs(3600));
    assert_eq!(c.space.upload_max_idle, Duration::from_secs(86400));
    let c = Config::parse(
        "gc:\n  interval: 6h\n  grace: 30m\n  untagged: true\nuploads:\n  max_idle: 7d\n",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(c.space.gc_interval, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(c.space.gc_grace, Duration::from_secs(1800));
    assert!(c.space.gc_untagged);
    assert_eq!(c.space.upload_max_idle, Duration::from_secs(7 * 86400));
    assert_eq!(c.space.purge_every(), Duration::from_secs(3600));
    let off = Config::parse("gc:\n  interval: off\n", Path::new(".")).unwrap();
    assert_eq!(off.space.gc_interval, None);

    let problems = Config::parse(
        "gc:\n  interval: daily\n  grace: 1 hour\n  sweep: true\nuploads:\n  max_idle: 1w\n",
        Path::new("."),
    )
    .unwrap_err();
    let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        vec![Some(2), Some(3), Some(4), Some(6)],
        "{problems:#?}"
    );
    assert!(problems[0]
        .message
        .contains("interval: \"daily\" is not a duration; write it like 30s"));
}
