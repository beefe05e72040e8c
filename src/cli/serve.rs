//! `regproxy serve`: the config (file, defaults, flags), the listener, the
//! first-start messages, logging and a graceful stop on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::config::{self, Config};
use crate::tls::{self, TlsMode};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Config file [default: ./proxy.yaml if it exists, else built-in defaults]
    #[arg(long, short, env = "REGPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:5000 or 127.0.0.1:0 (overrides the config)
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides storage.filesystem.root)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Serve plain HTTP (for loopback work and tests)
    #[arg(long)]
    no_tls: bool,
    /// Serve without authentication (for loopback work and tests)
    #[arg(long)]
    no_auth: bool,
}

/// The config `serve` uses: `--config`, else `./proxy.yaml` if present,
/// else the embedded defaults; then command-line overrides.
fn serve_config(args: &ServeArgs) -> Result<Config, CliError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None if Path::new(config::DEFAULT_FILE).is_file() => {
            Config::load(Path::new(config::DEFAULT_FILE))?
        }
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = &args.data {
        config.storage_root = d.clone();
    }
    if args.no_tls {
        config.tls = TlsMode::Disabled;
    }
    if args.no_auth {
        config.auth = None;
    }
    Ok(config)
}

pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let config = serve_config(&args)?;
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                format!("cannot start the async runtime: {e}"),
                "check the process limits (ulimit -u, ulimit -n)",
            )
        })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "another process is listening on {}; stop it, or pick another address with --listen",
                    config.listen
                ),
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port such as 5000".to_string()
                }
                _ => "check the listen address in proxy.yaml or --listen".to_string(),
            };
            CliError::new(format!("cannot listen on {}: {e}", config.listen), hint)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::new(format!("cannot read the bound address: {e}"), "retry"))?;
        let server = crate::proxy::Server::new(&config).map_err(|e| CliError::new(e.to_string(), e.hint()))?;
        match &config.source {
            Some(p) => tracing::info!(config = %p.display(), "loaded config"),
            None => tracing::info!("no config file; using built-in defaults"),
        }
        tracing::info!(data = %config.storage_root.display(), "storage");
        if !addr.ip().is_loopback() {
            if server.scheme() == "http" {
                tracing::warn!(
                    "SERVING PLAIN HTTP on {addr}: passwords and images cross the network unencrypted. \
                     Remove --no-tls (or tls.enabled: false) unless another proxy terminates TLS"
                );
            }
            if !server.auth_enabled() {
                tracing::warn!(
                    "SERVING WITHOUT AUTHENTICATION on {addr}: anyone who can reach this address can push, pull and delete. \
                     Remove --no-auth (or auth.enabled: false), or listen on 127.0.0.1"
                );
            }
        }
        if let Some(password) = server.initial_admin() {
            let file = config
                .auth
                .as_ref()
                .map(|a| a.htpasswd.display().to_string())
                .unwrap_or_default();
            // Shown once, on stdout, never logged.
            println!("regproxy: created user `admin` with password {} (in {file}); it is shown only this once", password.expose());
            let host_port = if addr.ip().is_unspecified() {
                let host = gethostname::gethostname().into_string().unwrap_or_else(|_| "localhost".into());
                format!("{host}:{}", addr.port())
            } else {
                addr.to_string()
            };
            println!(
                "regproxy: log in with: docker login {host_port}  -- change it with: regproxy htpasswd add admin --file {file}"
            );
        }
        if let Some(issued) = server.generated_certificate() {
            // Public information: how clients come to trust this registry.
            let host = issued.names.dns.first().cloned().unwrap_or_else(|| "localhost".into());
            println!(
                "regproxy: made a certificate in {} for {} and {}",
                issued.dir.display(),
                issued.names.dns.join(", "),
                issued.names.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            );
            for line in tls::trust::instructions(&host, addr.port(), &issued.ca_fingerprint).lines() {
                println!("regproxy: {line}");
            }
        }
        let shutdown = shutdown_signal();
        println!("regproxy: listening on {}://{addr}", server.scheme());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run(listener, shutdown).await;
        Ok(())
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this
/// is called (not when first polled), so a signal that arrives right after
/// startup is never missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(int) => {}
                _ = wait(term) => {}
            }
            tracing::info!("shutdown requested");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    }
}
