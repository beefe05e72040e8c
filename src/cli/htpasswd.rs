//! `regproxy htpasswd add | remove | list | verify`: users in an
//! Apache-compatible htpasswd file (bcrypt), edited atomically under a lock.

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum HtpasswdCommand {
    /// Add a user, or set a new password for an existing one.
    Add {
        user: String,
        #[arg(long, default_value = "htpasswd")]
        file: PathBuf,
        /// bcrypt cost (4-31; each step doubles the time a check takes)
        #[arg(long, default_value_t = crate::auth::htpasswd::DEFAULT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        user: String,
        #[arg(long, default_value = "htpasswd")]
        file: PathBuf,
    },
    /// List the users.
    List {
        #[arg(long, default_value = "htpasswd")]
        file: PathBuf,
    },
    /// Check a user's password (exit 0 if right, 1 if not).
    Verify {
        user: String,
        #[arg(long, default_value = "htpasswd")]
        file: PathBuf,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
}

fn read_password(stdin: bool, confirm: bool) -> Result<crate::auth::secret::Secret, CliError> {
    use crate::auth::secret::Secret;
    let io_err = |e: std::io::Error| {
        CliError::new(
            format!("cannot read the password: {e}"),
            "use --password-stdin to pipe it in",
        )
    };
    let password = if stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(io_err)?;
        Secret::new(line.trim_end_matches(['\n', '\r']))
    } else {
        let first = Secret::new(rpassword::prompt_password("Password: ").map_err(io_err)?);
        if confirm {
            let again =
                Secret::new(rpassword::prompt_password("Password again: ").map_err(io_err)?);
            if again != first {
                return Err(CliError::new(
                    "the passwords do not match",
                    "type the same password twice",
                ));
            }
        }
        first
    };
    if password.is_empty() {
        return Err(CliError::new(
            "the password is empty",
            "choose a non-empty password",
        ));
    }
    Ok(password)
}

pub fn run(command: HtpasswdCommand) -> Result<(), CliError> {
    use crate::auth::htpasswd::{self, HtpasswdFile};
    let file_err = |e: htpasswd::HtpasswdError| {
        CliError::new(e.to_string(), "check the --file path and its permissions")
    };
    let check_user = |user: &str| {
        if htpasswd::valid_user(user) {
            Ok(())
        } else {
            Err(CliError::new(
                format!("invalid user name {user:?}"),
                "use a name without `:`, spaces or control characters",
            ))
        }
    };
    match command {
        HtpasswdCommand::Add {
            user,
            file,
            cost,
            password_stdin,
        } => {
            check_user(&user)?;
            let password = read_password(password_stdin, true)?;
            let hash = htpasswd::hash_password(&password, cost).map_err(file_err)?;
            let existed = htpasswd::edit(&file, |f| {
                let existed = f.hash_of(&user).is_some();
                f.set(&user, hash);
                existed
            })
            .map_err(file_err)?;
            let what = if existed { "updated" } else { "added" };
            println!("{what} user {user} in {}", file.display());
            Ok(())
        }
        HtpasswdCommand::Remove { user, file } => {
            if htpasswd::edit(&file, |f| f.remove(&user)).map_err(file_err)? {
                println!("removed user {user} from {}", file.display());
                Ok(())
            } else {
                Err(CliError::new(
                    format!("no user {user} in {}", file.display()),
                    "list the users with: regproxy htpasswd list",
                ))
            }
        }
        HtpasswdCommand::List { file } => {
            let (f, problems) = HtpasswdFile::read(&file).map_err(file_err)?;
            for p in problems {
                eprintln!("{}:{}: {}", file.display(), p.line, p.message);
            }
            for u in f.users() {
                println!("{u}");
            }
            Ok(())
        }
        HtpasswdCommand::Verify {
            user,
            file,
            password_stdin,
        } => {
            let (f, _) = HtpasswdFile::read(&file).map_err(file_err)?;
            let Some(hash) = f.hash_of(&user) else {
                return Err(CliError::new(
                    format!("no user {user} in {}", file.display()),
                    "add it with: regproxy htpasswd add USER",
                ));
            };
            let password = read_password(password_stdin, false)?;
            if htpasswd::verify_password(&password, hash) {
                println!("password for user {user} correct");
                Ok(())
            } else {
                Err(CliError::new(
                    format!("password for user {user} does not match"),
                    "set a new one with: regproxy htpasswd add USER",
                ))
            }
        }
    }
}
