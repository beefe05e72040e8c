//! `regproxy config check`: every problem in a config file with its line,
//! or a summary of what the file sets.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::CliError;
use crate::auth::{Backend, Challenge};
use crate::config::{self, Config};
use crate::tls::TlsMode;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file and list every problem in it.
    Check {
        /// Config file
        #[arg(long, short, default_value = config::DEFAULT_FILE)]
        config: PathBuf,
    },
}

/// Writes and deletes a probe object in the bucket, so a missing bucket,
/// refused credentials or an unreachable endpoint show up before `serve`.
fn probe_s3(path: &Path, c: &Config, s3: &crate::config::s3::S3Settings) -> Result<(), CliError> {
    let storage = crate::proxy::open_storage(c)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display()), e.hint()).with_code(64))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}"), "retry"))?;
    runtime.block_on(storage.probe()).map_err(|e| {
        let msg = e.to_string();
        let (msg, hint) = match msg.split_once("; hint: ") {
            Some((m, h)) => (m.to_string(), h.to_string()),
            None => (
                msg.clone(),
                crate::registry::storage::s3::hint_for(&msg).into(),
            ),
        };
        CliError::new(
            format!(
                "{}: storage.s3 (bucket {} at {}) cannot be used: {msg}",
                path.display(),
                s3.bucket,
                s3.endpoint
            ),
            hint,
        )
        .with_code(64)
    })
}

/// The config `serve` and `trust` use: `path`, else `./proxy.yaml` if
/// present, else the embedded defaults.
pub fn load_or_default(path: Option<&Path>) -> Result<Config, CliError> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None if Path::new(config::DEFAULT_FILE).is_file() => {
            Config::load(Path::new(config::DEFAULT_FILE))?
        }
        None => Config::default(),
    })
}

pub fn run(command: ConfigCommand) -> Result<(), CliError> {
    match command {
        ConfigCommand::Check { config } => check(&config),
    }
}

fn check(config: &Path) -> Result<(), CliError> {
    let c = Config::load(config)?;
    for w in &c.warnings {
        match w.line {
            Some(l) => eprintln!("warning: {}:{l}: {}", config.display(), w.message),
            None => eprintln!("warning: {}: {}", config.display(), w.message),
        }
    }
    let files = config::check_files(&c);
    if !files.problems.is_empty() {
        let mut message = format!(
            "{} names files with {} problem(s):",
            config.display(),
            files.problems.len()
        );
        for p in &files.problems {
            message.push_str(&format!("\n  {p}"));
        }
        return Err(CliError::new(
            message,
            "fix or replace the files above (or the keys in proxy.yaml that name them)",
        )
        .with_code(64));
    }
    if let Some(s3) = &c.s3 {
        probe_s3(config, &c, s3)?;
    }
    println!("{}: OK", config.display());
    println!("  listen: {}", c.listen);
    match &c.s3 {
        Some(s3) => println!(
            "  storage.s3: bucket {} at {}, prefix {:?} (reachable, writable)",
            s3.bucket, s3.endpoint, s3.prefix
        ),
        None => println!("  storage.filesystem.root: {}", c.storage_root.display()),
    }
    println!("  trust_forwarded_headers: {}", c.trust_forwarded_headers);
    match &c.tls {
        TlsMode::Disabled => println!("  tls: off"),
        TlsMode::Auto { dir, .. } => println!("  tls: built-in CA in {}", dir.display()),
        TlsMode::Files { cert, .. } => println!("  tls: {}", cert.display()),
    }
    match &c.auth {
        None => println!("  auth: off"),
        Some(a) => {
            let challenge = match a.challenge {
                Challenge::Token => "Docker token service",
                Challenge::Basic => "Basic on every request",
            };
            let backends: Vec<String> = a
                .order
                .iter()
                .map(|b| match b {
                    Backend::Htpasswd => format!("users from htpasswd {}", a.htpasswd.display()),
                    Backend::Ldap => format!(
                        "users from LDAP {}",
                        a.ldap
                            .as_ref()
                            .map(|l| l.url.as_str())
                            .unwrap_or("(not set)")
                    ),
                })
                .collect();
            println!("  auth: {challenge}; {}", backends.join(", then "));
        }
    }
    if c.policy.has_rules() {
        println!("  access: rules from the access section");
    } else if c.auth.is_some() {
        println!("  access: no rules (every logged-in user may do everything)");
    }
    let s = &c.space;
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs());
    match s.gc_interval {
        Some(every) => println!(
            "  gc: every {}, grace {}{}",
            secs(every),
            secs(s.gc_grace),
            if s.gc_untagged {
                ", untagged manifests too"
            } else {
                ""
            }
        ),
        None => println!("  gc: off (run regproxy gc by hand)"),
    }
    println!(
        "  uploads: idle ones purged after {}",
        secs(s.upload_max_idle)
    );
    match c.admin {
        Some(a) => println!("  admin: http://{a} (/healthz, /readyz, /metrics)"),
        None => println!("  admin: off"),
    }
    println!(
        "  log: {}; shutdown waits up to {} s",
        match c.log_format {
            config::LogFormat::Text => "text",
            config::LogFormat::Json => "json",
        },
        c.shutdown_timeout.as_secs()
    );
    for n in &files.notes {
        println!("  note: {n}");
    }
    Ok(())
}
