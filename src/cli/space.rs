//! `regproxy gc` and `regproxy du`: garbage collection and storage use per
//! repository, on the data directory of a config (or `--data`).

use std::path::PathBuf;
use std::sync::Arc;

use super::CliError;
use crate::config::parse_duration;
use crate::registry::gc::GcOptions;
use crate::registry::storage::fs::FsStorage;
use crate::registry::storage::StorageError;
use crate::registry::Registry;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Config file [default: ./proxy.yaml if it exists, else built-in defaults]
    #[arg(long, short, env = "REGPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides storage.filesystem.root)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Report what would be freed; delete nothing
    #[arg(long)]
    dry_run: bool,
    /// Also remove manifests no tag reaches (children of tagged indexes and
    /// referrers of kept manifests stay)
    #[arg(long)]
    untagged: bool,
    /// Keep blobs younger than this, e.g. 1h or 30m [default: gc.grace, 1h]
    #[arg(long, value_parser = parse_duration)]
    grace: Option<std::time::Duration>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DuArgs {
    /// Config file [default: ./proxy.yaml if it exists, else built-in defaults]
    #[arg(long, short, env = "REGPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides storage.filesystem.root)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print the usage as JSON
    #[arg(long)]
    json: bool,
}

/// The registry on the data directory, and a runtime to drive it.
fn open(
    config: Option<&std::path::Path>,
    data: Option<PathBuf>,
) -> Result<(Registry, tokio::runtime::Runtime, crate::config::Config), CliError> {
    let config = super::config::load_or_default(config)?;
    let storage: Arc<dyn crate::registry::storage::Storage> = match (&config.s3, data) {
        (Some(_), None) => crate::proxy::open_storage(&config)
            .map_err(|e| CliError::new(e.to_string(), e.hint()))?,
        (_, data) => {
            let root = data.unwrap_or_else(|| config.storage_root.clone());
            if !root.join("docker/registry/v2").is_dir() {
                return Err(CliError::new(
                    format!(
                        "{} holds no registry data (no docker/registry/v2)",
                        root.display()
                    ),
                    "give the data directory with --data DIR or storage.filesystem.root in --config",
                ));
            }
            Arc::new(FsStorage::open(&root).map_err(|e| {
                CliError::new(
                    format!("cannot open storage at {}: {e}", root.display()),
                    "check that the directory is readable and writable by this user",
                )
            })?)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                format!("cannot start the async runtime: {e}"),
                "check the process limits (ulimit -u)",
            )
        })?;
    Ok((Registry::new(storage), runtime, config))
}

fn storage_failed(e: StorageError) -> CliError {
    // An object store's error carries its own hint (`; hint: ...`).
    if let StorageError::Unavailable(msg) = &e {
        if let Some((m, hint)) = msg.split_once("; hint: ") {
            return CliError::new(
                format!("reading or changing storage failed: storage is unavailable: {m}"),
                hint.to_string(),
            );
        }
    }
    let hint = match e {
        StorageError::Corrupt(_) => {
            "the collection stopped before its sweep; fix or remove what the message names, then run it again"
        }
        _ => "check the data directory's permissions and free space, then run the command again",
    };
    CliError::new(format!("reading or changing storage failed: {e}"), hint)
}

fn json_failed(e: serde_json::Error) -> CliError {
    CliError::new(
        format!("cannot write the report as JSON: {e}"),
        "run without --json",
    )
}

pub fn gc(args: GcArgs) -> Result<(), CliError> {
    let (registry, runtime, config) = open(args.config.as_deref(), args.data)?;
    let options = GcOptions {
        dry_run: args.dry_run,
        untagged: args.untagged,
        grace: args.grace.unwrap_or(config.space.gc_grace),
    };
    let report = runtime
        .block_on(registry.gc(options))
        .map_err(storage_failed)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(json_failed)?;
        println!("{text}");
    } else {
        print!("{report}");
    }
    Ok(())
}

pub fn du(args: DuArgs) -> Result<(), CliError> {
    let (registry, runtime, _) = open(args.config.as_deref(), args.data)?;
    let usage = runtime.block_on(registry.usage()).map_err(storage_failed)?;
    if args.json {
        let text = serde_json::to_string_pretty(&usage).map_err(json_failed)?;
        println!("{text}");
    } else {
        print!("{usage}");
    }
    Ok(())
}
