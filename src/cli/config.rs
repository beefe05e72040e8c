//! `regproxy config check`: every problem in a config file with its line,
//! or a summary of what the file sets.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::CliError;
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
    println!("{}: OK", config.display());
    println!("  listen: {}", c.listen);
    println!("  storage.filesystem.root: {}", c.storage_root.display());
    println!("  trust_forwarded_headers: {}", c.trust_forwarded_headers);
    match &c.tls {
        TlsMode::Disabled => println!("  tls: off"),
        TlsMode::Auto { dir, .. } => println!("  tls: built-in CA in {}", dir.display()),
        TlsMode::Files { cert, .. } => println!("  tls: {}", cert.display()),
    }
    match &c.auth {
        None => println!("  auth: off"),
        Some(a) => println!(
            "  auth: {:?}, backends {:?}, htpasswd {}",
            a.challenge,
            a.order,
            a.htpasswd.display()
        ),
    }
    Ok(())
}
