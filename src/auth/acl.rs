//! Per-namespace access rules: who may pull, push or delete where.
//!
//! Precedence, in one sentence: admins may do everything; otherwise the
//! first rule (top to bottom) whose subjects, repositories and actions all
//! match decides, allow or deny; when none matches, the default decides
//! (deny, unless `default: pull`).
//!
//! Repository patterns: a plain name is a prefix matched at `/` boundaries
//! (`team-a` covers `team-a/app` and `team-a/x/y`, never `team-ab`); `*`
//! matches one path component and `**` one or more (`devops/monitoring/*`);
//! `${user}` is the logged-in user's name (personal namespaces).

use std::collections::{BTreeMap, BTreeSet};

use crate::oci::names::{valid_component, RepoName};
use crate::oci::Action;

/// Who a request comes from, for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// `None` for anonymous requests.
    pub user: Option<String>,
    pub groups: Vec<String>,
}

impl Subject {
    pub fn anonymous() -> Subject {
        Subject::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SubjectPattern {
    User(String),
    Group(String),
    Authenticated,
    Anonymous,
}

impl SubjectPattern {
    fn parse(s: &str) -> Result<SubjectPattern, String> {
        match s {
            "authenticated" => Ok(SubjectPattern::Authenticated),
            "anonymous" => Ok(SubjectPattern::Anonymous),
            _ => match s.split_once(':') {
                Some(("user", u)) if !u.is_empty() => Ok(SubjectPattern::User(u.to_string())),
                Some(("group", g)) if !g.is_empty() => Ok(SubjectPattern::Group(g.to_string())),
                _ => Err(format!(
                    "unknown subject {s:?}: use user:NAME, group:NAME, authenticated or anonymous"
                )),
            },
        }
    }

    fn matches(&self, s: &Subject) -> bool {
        match self {
            SubjectPattern::Anonymous => s.user.is_none(),
            SubjectPattern::Authenticated => s.user.is_some(),
            SubjectPattern::User(u) => s.user.as_deref() == Some(u.as_str()),
            SubjectPattern::Group(g) => s.user.is_some() && s.groups.iter().any(|x| x == g),
        }
    }

    /// Whether every subject this one matches is also matched by `other`.
    fn covered_by(&self, other: &SubjectPattern) -> bool {
        self == other
            || (*other == SubjectPattern::Authenticated
                && matches!(self, SubjectPattern::User(_) | SubjectPattern::Group(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    User,
    Star,
    DoubleStar,
}

/// A repository pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RepoPattern {
    raw: String,
    parts: Vec<Part>,
    glob: bool,
}

impl RepoPattern {
    fn parse(s: &str) -> Result<RepoPattern, String> {
        let never = |why: &str| Err(format!("repository pattern {s:?} can never match: {why}"));
        if s.is_empty() {
            return never("it is empty");
        }
        let mut parts = Vec::new();
        for c in s.split('/') {
            parts.push(match c {
                "" => return never("empty path component (leading, trailing or double `/`)"),
                "*" => Part::Star,
                "**" => Part::DoubleStar,
                "${user}" => Part::User,
                lit if valid_component(lit.as_bytes()) => Part::Lit(lit.to_string()),
                lit => {
                    return never(&format!(
                        "{lit:?} is not a valid repository name component (lower-case letters, digits, `.`, `_`, `-`)"
                    ))
                }
            });
        }
        let glob = parts
            .iter()
            .any(|p| matches!(p, Part::Star | Part::DoubleStar));
        Ok(RepoPattern {
            raw: s.to_string(),
            parts,
            glob,
        })
    }

    fn matches(&self, repo: &RepoName, user: Option<&str>) -> bool {
        let comps: Vec<&str> = repo.components().collect();
        fn part_eq(p: &Part, c: &str, user: Option<&str>) -> bool {
            match p {
                Part::Lit(l) => l == c,
                Part::User => user == Some(c),
                Part::Star => true,
                Part::DoubleStar => true,
            }
        }
        fn glob(parts: &[Part], comps: &[&str], user: Option<&str>) -> bool {
            match parts.split_first() {
                None => comps.is_empty(),
                Some((Part::DoubleStar, rest)) => {
                    (1..=comps.len()).any(|n| glob(rest, &comps[n..], user))
                }
                Some((p, rest)) => {
                    !comps.is_empty() && part_eq(p, comps[0], user) && glob(rest, &comps[1..], user)
                }
            }
        }
        if self.glob {
            glob(&self.parts, &comps, user)
        } else {
            comps.len() >= self.parts.len()
                && self
                    .parts
                    .iter()
                    .zip(&comps)
                    .all(|(p, c)| part_eq(p, c, user))
        }
    }

    /// Whether every repository this pattern matches is also matched by
    /// `other` (a conservative check, for shadowing warnings).
    fn covered_by(&self, other: &RepoPattern) -> bool {
        if other.parts == [Part::DoubleStar] {
            return true;
        }
        if self == other {
            return true;
        }
        // A literal prefix covers longer literal prefixes and globs under it.
        !other.glob
            && other.parts.len() <= self.parts.len()
            && other
                .parts
                .iter()
                .zip(&self.parts)
                .all(|(a, b)| a == b && matches!(a, Part::Lit(_) | Part::User))
    }
}

/// One rule, as written.
#[derive(Debug, Clone)]
pub struct Rule {
    effect: Effect,
    subjects: Vec<SubjectPattern>,
    repos: Vec<RepoPattern>,
    actions: BTreeSet<Action>,
    /// Line in the config file, for messages.
    pub line: Option<usize>,
}

/// What no rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Deny,
    /// Authenticated users may pull.
    Pull,
}

/// Why a decision was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Authentication is off.
    Open,
    /// No `access` section: every authenticated user may do everything.
    NoRules,
    Admin,
    Rule {
        index: usize,
        line: Option<usize>,
        effect: Effect,
    },
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

/// The whole policy: groups, admins, rules and the default.
#[derive(Debug, Clone)]
pub struct Policy {
    mode: Mode,
    /// user -> groups, from `groups:` in the config (htpasswd users).
    member_of: BTreeMap<String, Vec<String>>,
    admins: Vec<SubjectPattern>,
    rules: Vec<Rule>,
    default: Fallback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    NoRules,
    Rules,
}

/// Raw rule from YAML.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub effect: Option<Effect>,
    pub subjects: Vec<String>,
    pub repositories: Vec<String>,
    pub actions: Vec<String>,
}

/// Raw `access:` section.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub default: Option<String>,
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// A problem in the rules, with the rule's line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub line: Option<usize>,
    pub message: String,
}

fn parse_action(a: &str) -> Result<Vec<Action>, String> {
    match a {
        "pull" => Ok(vec![Action::Pull]),
        "push" => Ok(vec![Action::Push]),
        "delete" => Ok(vec![Action::Delete]),
        "*" => Ok(vec![Action::Pull, Action::Push, Action::Delete]),
        other => Err(format!(
            "unknown action {other:?}: use pull, push, delete or *"
        )),
    }
}

impl Policy {
    /// Authentication is off: everything is allowed.
    pub fn open() -> Policy {
        Policy {
            mode: Mode::Open,
            member_of: BTreeMap::new(),
            admins: vec![],
            rules: vec![],
            default: Fallback::Deny,
        }
    }

    /// No `access` section: every authenticated user may do everything.
    pub fn no_rules(groups: &BTreeMap<String, Vec<String>>) -> Policy {
        Policy {
            mode: Mode::NoRules,
            member_of: invert(groups),
            ..Policy::open()
        }
    }

    /// Builds a policy from the config's `groups:` and `access:`. `lines`
    /// gives each rule's line; `groups_are_open` is true when groups may also
    /// come from LDAP (so a group not in `groups:` is not an error).
    pub fn build(
        groups: &BTreeMap<String, Vec<String>>,
        raw: &RawAccess,
        lines: &[usize],
        groups_are_open: bool,
    ) -> Result<Policy, Vec<RuleProblem>> {
        let mut problems = Vec::new();
        let mut subject = |s: &str, line: Option<usize>| match SubjectPattern::parse(s) {
            Ok(SubjectPattern::Group(g)) if !groups_are_open && !groups.contains_key(&g) => {
                problems.push(RuleProblem {
                    line,
                    message: format!("group {g:?} is never defined (add it under `groups:`)"),
                });
                None
            }
            Ok(p) => Some(p),
            Err(m) => {
                problems.push(RuleProblem { line, message: m });
                None
            }
        };
        let admins: Vec<SubjectPattern> =
            raw.admins.iter().filter_map(|s| subject(s, None)).collect();
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let line = lines.get(i).copied();
            let subjects: Vec<SubjectPattern> =
                r.subjects.iter().filter_map(|s| subject(s, line)).collect();
            rules.push((i, line, subjects, r));
        }
        let mut built = Vec::new();
        for (i, line, subjects, r) in rules {
            let mut bad = |m: String| {
                problems.push(RuleProblem {
                    line,
                    message: format!("rule {}: {m}", i + 1),
                })
            };
            if r.subjects.is_empty() {
                bad("no subjects".into());
            }
            if r.repositories.is_empty() {
                bad("no repositories".into());
            }
            if r.actions.is_empty() {
                bad("no actions".into());
            }
            let mut repos = Vec::new();
            for p in &r.repositories {
                match RepoPattern::parse(p) {
                    Ok(p) => repos.push(p),
                    Err(m) => bad(m),
                }
            }
            let mut actions = BTreeSet::new();
            for a in &r.actions {
                match parse_action(a) {
                    Ok(v) => actions.extend(v),
                    Err(m) => bad(m),
                }
            }
            if repos.iter().any(|p| p.parts.contains(&Part::User))
                && subjects.iter().all(|s| *s == SubjectPattern::Anonymous)
            {
                bad("`${user}` can never match for anonymous users".into());
            }
            built.push(Rule {
                effect: r.effect.unwrap_or(Effect::Allow),
                subjects,
                repos,
                actions,
                line,
            });
        }
        let default = match raw.default.as_deref() {
            None | Some("deny") => Fallback::Deny,
            Some("pull") => Fallback::Pull,
            Some(other) => {
                problems.push(RuleProblem {
                    line: None,
                    message: format!("access.default {other:?}: use deny or pull"),
                });
                Fallback::Deny
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Policy {
            mode: Mode::Rules,
            member_of: invert(groups),
            admins,
            rules: built,
            default,
        })
    }

    /// Whether this policy has an `access:` section (rules, admins, default).
    pub fn has_rules(&self) -> bool {
        self.mode == Mode::Rules
    }

    /// The groups `groups:` gives a user.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.member_of.get(user).cloned().unwrap_or_default()
    }

    /// Decides whether `subject` may do `action` on `repo`.
    pub fn decide(&self, subject: &Subject, repo: &RepoName, action: Action) -> Decision {
        match self.mode {
            Mode::Open => {
                return Decision {
                    allowed: true,
                    reason: Reason::Open,
                }
            }
            Mode::NoRules => {
                return Decision {
                    allowed: subject.user.is_some(),
                    reason: Reason::NoRules,
                }
            }
            Mode::Rules => {}
        }
        if self.admins.iter().any(|a| a.matches(subject)) {
            return Decision {
                allowed: true,
                reason: Reason::Admin,
            };
        }
        let user = subject.user.as_deref();
        for (index, r) in self.rules.iter().enumerate() {
            if r.actions.contains(&action)
                && r.subjects.iter().any(|s| s.matches(subject))
                && r.repos.iter().any(|p| p.matches(repo, user))
            {
                return Decision {
                    allowed: r.effect == Effect::Allow,
                    reason: Reason::Rule {
                        index,
                        line: r.line,
                        effect: r.effect,
                    },
                };
            }
        }
        Decision {
            allowed: self.default == Fallback::Pull
                && action == Action::Pull
                && subject.user.is_some(),
            reason: Reason::Default,
        }
    }

    /// Rules that can never decide anything because an earlier rule covers
    /// all their subjects, repositories and actions.
    pub fn shadowed(&self) -> Vec<RuleProblem> {
        let mut out = Vec::new();
        for (j, later) in self.rules.iter().enumerate() {
            for (i, earlier) in self.rules[..j].iter().enumerate() {
                let subjects = later
                    .subjects
                    .iter()
                    .all(|s| earlier.subjects.iter().any(|e| s.covered_by(e)));
                let repos = later
                    .repos
                    .iter()
                    .all(|r| earlier.repos.iter().any(|e| r.covered_by(e)));
                let actions = later.actions.is_subset(&earlier.actions);
                if subjects && repos && actions {
                    let at = earlier
                        .line
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default();
                    out.push(RuleProblem {
                        line: later.line,
                        message: format!(
                            "rule {} is shadowed by rule {}{at} and never applies",
                            j + 1,
                            i + 1
                        ),
                    });
                    break;
                }
            }
        }
        out
    }

    /// The patterns of a rule, for `acl check` output.
    pub fn describe(&self, index: usize) -> String {
        self.rules
            .get(index)
            .map(|r| {
                let repos: Vec<&str> = r.repos.iter().map(|p| p.raw.as_str()).collect();
                let actions: Vec<&str> = r.actions.iter().map(|a| a.as_str()).collect();
                format!(
                    "{:?} {} on {}",
                    r.effect,
                    actions.join(","),
                    repos.join(", ")
                )
                .to_lowercase()
            })
            .unwrap_or_default()
    }
}

fn invert(groups: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, users) in groups {
        for u in users {
            m.entry(u.clone()).or_default().push(g.clone());
        }
    }
    m
}

/// The line of each item of the `rules:` list under `access:` (block YAML).
pub fn rule_lines(text: &str) -> Vec<usize> {
    let indent = |s: &str| s.len() - s.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let Some(access) = lines
        .iter()
        .position(|l| l.trim_end() == "access:" && indent(l) == 0)
    else {
        return vec![];
    };
    let Some(rules) = lines
        .iter()
        .enumerate()
        .skip(access + 1)
        .take_while(|(_, l)| {
            l.trim().is_empty() || l.trim_start().starts_with('#') || indent(l) > 0
        })
        .find(|(_, l)| l.trim_start().starts_with("rules:"))
        .map(|(i, _)| i)
    else {
        return vec![];
    };
    let base = indent(lines[rules]);
    let mut out = Vec::new();
    let mut item_indent = None;
    for (i, l) in lines.iter().enumerate().skip(rules + 1) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = indent(l);
        if ind < base || (ind == base && !t.starts_with("- ")) {
            break;
        }
        if t.starts_with("- ") || t == "-" {
            let first = *item_indent.get_or_insert(ind);
            if ind == first {
                out.push(i + 1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
        Policy::build(&groups(), &raw, &[10, 11, 12, 13, 14, 15], false).unwrap()
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
        let p = Policy::build(&groups(), &raw, &[], false).unwrap();
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
        let problems = Policy::build(&groups(), &raw, &[3, 7, 12], false).unwrap_err();
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
        assert!(Policy::build(&groups(), &raw, &[], true).is_ok());
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
        let p = Policy::build(&groups(), &raw, &[1, 2, 3, 4], false).unwrap();
        let s = p.shadowed();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].line, Some(2));
        assert!(s[0].message.contains("shadowed by rule 1"));
    }

    #[test]
    fn finds_rule_lines() {
        let text = "listen: x\naccess:\n  default: deny\n  rules:\n    # team a\n    - subjects: [a]\n      repositories: [b]\n      actions: [pull]\n\n    - subjects: [c]\n      repositories:\n        - d\n      actions: [push]\ngroups:\n  - x\n";
        assert_eq!(rule_lines(text), vec![6, 10]);
    }
}
