//! The two kinds of pattern a rule is made of, parsed once from the
//! config: subjects (`user:NAME`, `group:NAME`, `authenticated`,
//! `anonymous`) and repository patterns (prefixes, `*`, `**`, `${user}`),
//! with how each matches and when one covers another.

use crate::oci::names::{valid_component, RepoName};

use super::Subject;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SubjectPattern {
    User(String),
    Group(String),
    Authenticated,
    Anonymous,
}

impl SubjectPattern {
    pub(super) fn parse(s: &str) -> Result<SubjectPattern, String> {
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

    pub(super) fn matches(&self, s: &Subject) -> bool {
        match self {
            SubjectPattern::Anonymous => s.user.is_none(),
            SubjectPattern::Authenticated => s.user.is_some(),
            SubjectPattern::User(u) => s.user.as_deref() == Some(u.as_str()),
            SubjectPattern::Group(g) => s.user.is_some() && s.groups.iter().any(|x| x == g),
        }
    }

    /// Whether every subject this one matches is also matched by `other`.
    pub(super) fn covered_by(&self, other: &SubjectPattern) -> bool {
        self == other
            || (*other == SubjectPattern::Authenticated
                && matches!(self, SubjectPattern::User(_) | SubjectPattern::Group(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Lit(String),
    User,
    Star,
    DoubleStar,
}

/// A repository pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RepoPattern {
    pub(super) raw: String,
    pub(super) parts: Vec<Part>,
    glob: bool,
}

impl RepoPattern {
    pub(super) fn parse(s: &str) -> Result<RepoPattern, String> {
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

    pub(super) fn matches(&self, repo: &RepoName, user: Option<&str>) -> bool {
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
    pub(super) fn covered_by(&self, other: &RepoPattern) -> bool {
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
