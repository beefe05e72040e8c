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

mod explain;
mod pattern;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::oci::names::RepoName;
use crate::oci::Action;
use pattern::{RepoPattern, SubjectPattern};
pub use rules::{access_lines, AccessLines, RawAccess, RawRule, RuleLines, RuleProblem};

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

    /// Whether this policy has an `access:` section (rules, admins, default).
    pub fn has_rules(&self) -> bool {
        self.mode == Mode::Rules
    }

    /// The groups `groups:` gives a user.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.member_of.get(user).cloned().unwrap_or_default()
    }

    /// Whether `subject` may do everything (an admin; everyone without
    /// logins, every logged-in user without an `access:` section).
    pub fn is_admin(&self, subject: &Subject) -> bool {
        match self.mode {
            Mode::Open => true,
            Mode::NoRules => subject.user.is_some(),
            Mode::Rules => self.admins.iter().any(|a| a.matches(subject)),
        }
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
