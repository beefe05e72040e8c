//! Table-driven tests of the rules: precedence, personal namespaces,
//! globs, defaults, problems with lines, shadowing.

use super::*;

fn groups() -> BTreeMap<String, Vec<String>> {
    let mut g = BTreeMap::new();
    g.insert(
        "team-a".to_string(),
        vec!["alice".to_string(), "bob".to_string()],
    );
    g.insert("team-b".to_string(), vec!["carol".to_string()]);
    g.insert("admins".to_string(), vec!["root".to_string()]);
    g
}

fn rule(effect: Effect, subjects: &[&str], repos: &[&str], actions: &[&str]) -> RawRule {
    RawRule {
        effect: Some(effect),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        repositories: repos.iter().map(|s| s.to_string()).collect(),
        actions: actions.iter().map(|s| s.to_string()).collect(),
    }
}

fn policy() -> Policy {
    let raw = RawAccess {
        default: None,
        admins: vec!["group:admins".into()],
        rules: vec![
            rule(Effect::Deny, &["user:bob"], &["team-a/secret"], &["*"]),
            rule(
                Effect::Allow,
                &["group:team-a"],
                &["team-a"],
                &["pull", "push"],
            ),
            rule(
                Effect::Allow,
                &["group:team-b"],
                &["team-b"],
                &["pull", "push"],
            ),
            rule(Effect::Allow, &["authenticated"], &["${user}"], &["*"]),
            rule(
                Effect::Allow,
                &["authenticated"],
                &["devops/monitoring/*"],
                &["pull"],
            ),
            rule(
                Effect::Allow,
                &["authenticated", "anonymous"],
                &["shared"],
                &["pull"],
            ),
        ],
    };
    Policy::build(
        &groups(),
        &raw,
        &AccessLines::at(&[10, 11, 12, 13, 14, 15]),
        false,
    )
    .unwrap()
}

fn who(user: &str, p: &Policy) -> Subject {
    Subject {
        user: Some(user.into()),
        groups: p.groups_of(user),
    }
}

#[test]
fn table() {
    use Action::*;
    let p = policy();
    let anon = Subject::anonymous();
    let cases: &[(Subject, &str, Action, bool)] = &[
        (who("alice", &p), "team-a/app", Push, true),
        (who("alice", &p), "team-a/x/y", Push, true),
        (who("alice", &p), "team-a", Pull, true),
        (who("alice", &p), "team-ab/app", Pull, false),
        (who("alice", &p), "team-a/app", Delete, false),
        (who("alice", &p), "team-b/app", Pull, false),
        (who("alice", &p), "shared/base", Pull, true),
        (who("alice", &p), "shared/base", Push, false),
        (who("alice", &p), "alice/tools", Delete, true),
        (who("alice", &p), "bob/tools", Pull, false),
        (who("bob", &p), "team-a/secret", Pull, false),
        (who("bob", &p), "team-a/secret/x", Pull, false),
        (who("bob", &p), "team-a/app", Push, true),
        (who("carol", &p), "team-b/app", Push, true),
        (who("carol", &p), "team-a/app", Pull, false),
        (who("root", &p), "team-a/app", Delete, true),
        (who("root", &p), "anything/at/all", Push, true),
        (who("dave", &p), "devops/monitoring/prometheus", Pull, true),
        (who("dave", &p), "devops/monitoring/a/b", Pull, false),
        (who("dave", &p), "devops/monitoring/prometheus", Push, false),
        (anon.clone(), "shared/base", Pull, true),
        (anon.clone(), "shared/base", Push, false),
        (anon.clone(), "team-a/app", Pull, false),
        (anon, "alice/tools", Pull, false),
    ];
    for (s, repo, action, want) in cases {
        let d = p.decide(s, &repo.parse().unwrap(), *action);
        assert_eq!(d.allowed, *want, "{s:?} {action:?} {repo}: {d:?}");
    }
}

#[test]
fn reasons_name_the_rule_line() {
    let p = policy();
    let d = p.decide(
        &who("bob", &p),
        &"team-a/secret".parse().unwrap(),
        Action::Pull,
    );
    assert_eq!(
        d.reason,
        Reason::Rule {
            index: 0,
            line: Some(10),
            effect: Effect::Deny
        }
    );
    let d = p.decide(&who("dave", &p), &"nowhere".parse().unwrap(), Action::Pull);
    assert_eq!(d.reason, Reason::Default);
    assert!(!d.allowed);
    let d = p.decide(&who("root", &p), &"x".parse().unwrap(), Action::Delete);
    assert_eq!(d.reason, Reason::Admin);
}

#[test]
fn default_pull_and_no_rules() {
    let raw = RawAccess {
        default: Some("pull".into()),
        ..Default::default()
    };
    let p = Policy::build(&groups(), &raw, &AccessLines::at(&[]), false).unwrap();
    assert!(
        p.decide(&who("x", &p), &"any".parse().unwrap(), Action::Pull)
            .allowed
    );
    assert!(
        !p.decide(&who("x", &p), &"any".parse().unwrap(), Action::Push)
            .allowed
    );
    assert!(
        !p.decide(&Subject::anonymous(), &"any".parse().unwrap(), Action::Pull)
            .allowed
    );
    let open = Policy::no_rules(&groups());
    assert!(
        open.decide(&who("x", &open), &"any".parse().unwrap(), Action::Delete)
            .allowed
    );
    assert!(
        !open
            .decide(&Subject::anonymous(), &"any".parse().unwrap(), Action::Pull)
            .allowed
    );
}

#[test]
fn invalid_rules_are_reported_with_lines() {
    let raw = RawAccess {
        default: Some("maybe".into()),
        admins: vec![],
        rules: vec![
            rule(Effect::Allow, &["group:ghosts"], &["team-a"], &["pull"]),
            rule(
                Effect::Allow,
                &["authenticated"],
                &["Team-A", "a//b", "a/"],
                &["pull", "fly"],
            ),
            rule(Effect::Allow, &["somebody"], &["x"], &["pull"]),
        ],
    };
    let problems =
        Policy::build(&groups(), &raw, &AccessLines::at(&[3, 7, 12]), false).unwrap_err();
    let text: Vec<String> = problems
        .iter()
        .map(|p| format!("{:?}: {}", p.line, p.message))
        .collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("Some(3)") && t.contains("ghosts")),
        "{text:#?}"
    );
    assert_eq!(
        text.iter()
            .filter(|t| t.starts_with("Some(7)") && t.contains("can never match"))
            .count(),
        3,
        "{text:#?}"
    );
    assert!(text
        .iter()
        .any(|t| t.starts_with("Some(7)") && t.contains("fly")));
    assert!(text
        .iter()
        .any(|t| t.starts_with("Some(12)") && t.contains("somebody")));
    assert!(text.iter().any(|t| t.contains("maybe")));
    // With LDAP, groups may come from the directory.
    let raw = RawAccess {
        rules: vec![rule(
            Effect::Allow,
            &["group:ghosts"],
            &["team-a"],
            &["pull"],
        )],
        ..Default::default()
    };
    assert!(Policy::build(&groups(), &raw, &AccessLines::at(&[]), true).is_ok());
}

#[test]
fn shadowed_rules_are_found() {
    let raw = RawAccess {
        default: None,
        admins: vec![],
        rules: vec![
            rule(
                Effect::Allow,
                &["authenticated"],
                &["team-a"],
                &["pull", "push"],
            ),
            rule(Effect::Deny, &["group:team-a"], &["team-a/app"], &["push"]),
            rule(Effect::Allow, &["group:team-b"], &["team-b"], &["pull"]),
            rule(Effect::Allow, &["anonymous"], &["team-a"], &["pull"]),
        ],
    };
    let p = Policy::build(&groups(), &raw, &AccessLines::at(&[1, 2, 3, 4]), false).unwrap();
    let s = p.shadowed();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].line, Some(2));
    assert!(s[0].message.contains("shadowed by rule 1"));
}

#[test]
fn finds_rule_lines() {
    let text = "listen: x\naccess:\n  default: deny\n  rules:\n    # team a\n    - subjects: [a]\n      repositories: [b]\n      actions: [pull]\n\n    - subjects: [c]\n      repositories:\n        - d\n      actions: [push]\ngroups:\n  - x\n";
    let lines = access_lines(text);
    let items: Vec<usize> = lines.rules.iter().map(|r| r.item).collect();
    assert_eq!(items, vec![6, 10]);
    assert_eq!(lines.default, Some(3));
    assert_eq!(
        lines.rules[1],
        RuleLines {
            item: 10,
            subjects: Some(10),
            repositories: Some(11),
            actions: Some(13),
        }
    );
    assert_eq!(lines.rules[0].actions, Some(8));
}
