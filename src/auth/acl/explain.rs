//! Explaining the rules to an operator: rules that an earlier rule shadows
//! (`config check` warnings) and a rule's patterns in words (`acl check`).

use super::{Policy, RuleProblem};

impl Policy {
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
