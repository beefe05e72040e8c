//! The command line: the clap definitions, the dispatch to one file per
//! subcommand, and [`CliError`].
//!
//! Every failure prints `regproxy: error: ...`, its causes, and a
//! `hint: ...` saying what to do, then exits non-zero (64 for a bad config,
//! 1 otherwise). Nothing here panics on user input.

mod acl;
mod config;
mod gen_cert;
mod htpasswd;
mod serve;
mod space;
mod trust;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;

#[derive(Debug, Parser)]
#[command(
    name = "regproxy",
    version,
    about = "A private container registry with TLS, logins and per-team permissions"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry.
    Serve(serve::ServeArgs),
    /// Make a local CA (once) and a server certificate signed by it.
    #[command(
        after_help = "Clients then trust certs/ca.crt instead of using insecure-registries; \
the command prints how, for Docker, podman/skopeo, containerd/k3s and the OS store."
    )]
    GenCert(gen_cert::GenCertArgs),
    /// Print the commands that make a client trust this registry's CA under
    /// a name, without issuing anything.
    Trust(trust::TrustArgs),
    /// Manage users in an htpasswd file (bcrypt, Apache-compatible).
    Htpasswd {
        #[command(subcommand)]
        command: htpasswd::HtpasswdCommand,
    },
    /// Explain the access rules.
    Acl {
        #[command(subcommand)]
        command: acl::AclCommand,
    },
    /// Delete blobs no manifest needs (and with --untagged, manifests no tag
    /// reaches); reports what it frees per repository.
    #[command(
        after_help = "Safe while `serve` runs on the same data: blobs younger than the grace period \
(gc.grace, 1h) are never deleted. Inside `serve`, gc.interval runs it on a schedule."
    )]
    Gc(space::GcArgs),
    /// Show the storage each repository uses.
    Du(space::DuArgs),
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
}

/// A CLI failure: a message, its causes and a hint.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: Some(hint.into()),
            code: 1,
        }
    }
}

impl CliError {
    /// The same error with another exit code (64: a bad config).
    pub(crate) fn with_code(mut self, code: u8) -> CliError {
        self.code = code;
        self
    }

    /// Exit with `code` and no message (the output already said it all).
    pub(crate) fn silent(code: u8) -> CliError {
        CliError {
            message: String::new(),
            hint: None,
            code,
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        let hint = match &e {
            ConfigError::Read { .. } => {
                "check the path given with --config, or run without it to use the built-in defaults"
            }
            ConfigError::Invalid { .. } => {
                "fix the lines above; the repository's proxy.yaml is a commented example"
            }
        };
        CliError {
            message: e.to_string(),
            hint: Some(hint.into()),
            code: 64,
        }
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.message.is_empty() => ExitCode::from(e.code),
        Err(e) => {
            eprintln!("regproxy: error: {}", e.message);
            if let Some(h) = e.hint {
                eprintln!("hint: {h}");
            }
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::GenCert(args) => gen_cert::run(args),
        Command::Trust(args) => trust::run(args),
        Command::Htpasswd { command } => htpasswd::run(command),
        Command::Acl { command } => acl::run(command),
        Command::Config { command } => config::run(command),
        Command::Gc(args) => space::gc(args),
        Command::Du(args) => space::du(args),
    }
}
