//! `regproxy acl check USER REPO ACTION`: the decision of the access rules
//! and the rule (`file:line`) that made it.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::CliError;
use crate::config::{self, Config};

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// May USER do ACTION on REPO? Prints allow or deny and the rule that
    /// decided; exits 0 for allow, 1 for deny.
    Check {
        /// A user name, or `anonymous`
        user: String,
        repo: String,
        /// pull, push or delete
        action: String,
        /// A group the user is in besides those in `groups:` (e.g. from LDAP); repeatable
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Config file
        #[arg(long, short, default_value = config::DEFAULT_FILE)]
        config: PathBuf,
    },
}

pub fn run(command: AclCommand) -> Result<(), CliError> {
    match command {
        AclCommand::Check {
            user,
            repo,
            action,
            groups,
            config,
        } => check(&user, &repo, &action, groups, &config),
    }
}

fn check(
    user: &str,
    repo: &str,
    action: &str,
    extra: Vec<String>,
    path: &Path,
) -> Result<(), CliError> {
    use crate::auth::acl::{Reason, Subject};
    use crate::oci::Action;
    let config = Config::load(path)?;
    let repo: crate::oci::names::RepoName =
        repo.parse().map_err(|e: crate::oci::names::NameError| {
            CliError::new(
                format!("invalid repository name {repo:?}: {e}"),
                "use a name such as team-a/app",
            )
        })?;
    let act = match action {
        "pull" => Action::Pull,
        "push" => Action::Push,
        "delete" => Action::Delete,
        other => {
            return Err(CliError::new(
                format!("unknown action {other:?}"),
                "use pull, push or delete",
            ));
        }
    };
    let policy = &config.policy;
    let subject = if user == "anonymous" {
        Subject::anonymous()
    } else {
        let mut groups = policy.groups_of(user);
        groups.extend(extra);
        Subject {
            user: Some(user.to_string()),
            groups,
        }
    };
    let d = policy.decide(&subject, &repo, act);
    let verdict = if d.allowed { "allow" } else { "deny" };
    let why = match d.reason {
        Reason::Open => "authentication is off".to_string(),
        Reason::NoRules => "no access rules: every logged-in user may do everything".to_string(),
        Reason::Admin => "admin".to_string(),
        Reason::Default => "no rule matched: the default decides".to_string(),
        Reason::Rule { index, line, .. } => {
            let at = line
                .map(|l| format!("{}:{l}", path.display()))
                .unwrap_or_else(|| path.display().to_string());
            format!("rule {} at {at}: {}", index + 1, policy.describe(index))
        }
    };
    println!("{verdict}: {user} {action} {repo} ({why})");
    if subject.user.is_some() {
        println!(
            "  groups: {}",
            if subject.groups.is_empty() {
                "none".to_string()
            } else {
                subject.groups.join(", ")
            }
        );
    }
    if d.allowed {
        Ok(())
    } else {
        Err(CliError::silent(1))
    }
}
