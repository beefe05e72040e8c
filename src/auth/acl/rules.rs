//! The `access:` section as written (`RawAccess`), and its validation into
//! a [`Policy`]: every problem is collected with its rule's line, none
//! stops the others from being found.

use std::collections::{BTreeMap, BTreeSet};

use super::pattern::{Part, RepoPattern, SubjectPattern};
use super::{invert, Effect, Fallback, Mode, Policy, Rule};
use crate::oci::Action;

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
    /// Builds a policy from the config's `groups:` and `access:`. `lines`
    /// says where each part is written, so every problem names the line of
    /// the key that has it; `groups_are_open` is true when groups may also
    /// come from LDAP (so a group not in `groups:` is not an error).
    pub fn build(
        groups: &BTreeMap<String, Vec<String>>,
        raw: &RawAccess,
        lines: &AccessLines,
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
        let admins: Vec<SubjectPattern> = raw
            .admins
            .iter()
            .filter_map(|s| subject(s, lines.admins))
            .collect();
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let at = lines.rules.get(i).copied().unwrap_or_default();
            // A key's own line, else the rule's `- ` line.
            let item = (at.item > 0).then_some(at.item);
            let key_line = |key: Option<usize>| key.or(item);
            let subjects: Vec<SubjectPattern> = r
                .subjects
                .iter()
                .filter_map(|s| subject(s, key_line(at.subjects)))
                .collect();
            rules.push((i, item, at, subjects, r));
        }
        let mut built = Vec::new();
        for (i, line, at, subjects, r) in rules {
            let mut bad = |key: Option<usize>, m: String| {
                problems.push(RuleProblem {
                    line: key.or(line),
                    message: format!("rule {}: {m}", i + 1),
                })
            };
            if r.subjects.is_empty() {
                bad(at.subjects, "no subjects".into());
            }
            if r.repositories.is_empty() {
                bad(at.repositories, "no repositories".into());
            }
            if r.actions.is_empty() {
                bad(at.actions, "no actions".into());
            }
            let mut repos = Vec::new();
            for p in &r.repositories {
                match RepoPattern::parse(p) {
                    Ok(p) => repos.push(p),
                    Err(m) => bad(at.repositories, m),
                }
            }
            let mut actions = BTreeSet::new();
            for a in &r.actions {
                match parse_action(a) {
                    Ok(v) => actions.extend(v),
                    Err(m) => bad(at.actions, m),
                }
            }
            if repos.iter().any(|p| p.parts.contains(&Part::User))
                && subjects.iter().all(|s| *s == SubjectPattern::Anonymous)
            {
                bad(
                    at.repositories,
                    "`${user}` can never match for anonymous users".into(),
                );
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
                    line: lines.default,
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
}

/// Where the `access:` section's parts are written (1-based lines), so a
/// problem points at the key that has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessLines {
    pub default: Option<usize>,
    pub admins: Option<usize>,
    pub rules: Vec<RuleLines>,
}

/// One item of `rules:`: its `- ` line and the lines of its keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleLines {
    pub item: usize,
    pub subjects: Option<usize>,
    pub repositories: Option<usize>,
    pub actions: Option<usize>,
}

impl AccessLines {
    /// Rules starting at these lines, keys unknown (for tests and callers
    /// without the text).
    pub fn at(items: &[usize]) -> AccessLines {
        AccessLines {
            rules: items
                .iter()
                .map(|&item| RuleLines {
                    item,
                    ..RuleLines::default()
                })
                .collect(),
            ..AccessLines::default()
        }
    }
}

/// Finds the lines of `default:`, `admins:` and each rule's keys in the
/// top-level `access:` section (block YAML).
pub fn access_lines(text: &str) -> AccessLines {
    let indent = |s: &str| s.len() - s.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = AccessLines::default();
    let Some(access) = lines
        .iter()
        .position(|l| l.trim_end() == "access:" && indent(l) == 0)
    else {
        return out;
    };
    let section = lines
        .iter()
        .enumerate()
        .skip(access + 1)
        .take_while(|(_, l)| {
            l.trim().is_empty() || l.trim_start().starts_with('#') || indent(l) > 0
        });
    let mut rules = None;
    for (i, l) in section {
        let t = l.trim_start();
        if t.starts_with("default:") {
            out.default.get_or_insert(i + 1);
        } else if t.starts_with("admins:") {
            out.admins.get_or_insert(i + 1);
        } else if t.starts_with("rules:") {
            rules.get_or_insert(i);
        }
    }
    let Some(rules) = rules else {
        return out;
    };
    let base = indent(lines[rules]);
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
        let mut key_text = t;
        if t.starts_with("- ") || t == "-" {
            let first = *item_indent.get_or_insert(ind);
            if ind == first {
                out.rules.push(RuleLines {
                    item: i + 1,
                    ..RuleLines::default()
                });
                key_text = t[1..].trim_start();
            }
        }
        if let Some(rule) = out.rules.last_mut() {
            for (key, slot) in [
                ("subjects:", &mut rule.subjects),
                ("repositories:", &mut rule.repositories),
                ("actions:", &mut rule.actions),
            ] {
                if key_text.starts_with(key) {
                    slot.get_or_insert(i + 1);
                }
            }
        }
    }
    out
}
