//! `regproxy serve`: the config (file, defaults, flags), the listener, the
//! first-start messages, logging and a graceful stop on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::config::{self, Config};
use crate::tls::names::{self, SubjectNames};
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
    /// Admin listener for /healthz, /readyz and /metrics, e.g. 127.0.0.1:5001 or 127.0.0.1:0 (overrides admin.listen)
    #[arg(long, env = "REGPROXY_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
}

/// The config `serve` uses (see [`super::config::load_or_default`]), with
/// the command-line overrides.
fn serve_config(args: &ServeArgs) -> Result<Config, CliError> {
    let mut config = super::config::load_or_default(args.config.as_deref())?;
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
    if let (Some(a), Some(_)) = (args.admin_listen, config.admin) {
        config.admin = Some(a);
    }
    if let Some(a) = config.admin {
        if a.port() != 0 && a.port() == config.listen.port() && a.ip() == config.listen.ip() {
            return Err(CliError::new(
                format!("the admin listener {a} is the public address"),
                "give admin.listen (or --admin-listen) its own port, e.g. 127.0.0.1:5001",
            ));
        }
    }
    // A first start puts the address it listens on into the certificate,
    // so the printed `docker login IP:PORT` is one clients accept.
    if let TlsMode::Auto { extra, .. } = &mut config.tls {
        if !config.listen.ip().is_unspecified() {
            extra.add_ip(config.listen.ip());
        }
    }
    Ok(config)
}

pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let config = serve_config(&args)?;
    init_logging(config.log_format);
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                format!("cannot start the async runtime: {e}"),
                "check the process limits (ulimit -u, ulimit -n)",
            )
        })?;
    let result = runtime.block_on(async move {
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
        let mut server = crate::proxy::Server::new(&config).map_err(|e| CliError::new(e.to_string(), e.hint()))?;
        let admin_addr = match config.admin {
            Some(a) => {
                let l = tokio::net::TcpListener::bind(a).await.map_err(|e| {
                    CliError::new(
                        format!("cannot listen on {a} for the admin endpoints: {e}"),
                        "pick another admin.listen in proxy.yaml (or --admin-listen), or turn it off with admin.enabled: false",
                    )
                })?;
                let bound = l.local_addr().map_err(|e| CliError::new(format!("cannot read the bound admin address: {e}"), "retry"))?;
                server = server.with_admin_listener(l);
                Some(bound)
            }
            None => None,
        };
        match &config.source {
            Some(p) => tracing::info!(config = %p.display(), "loaded config"),
            None => tracing::info!("no config file; using built-in defaults"),
        }
        match &config.s3 {
            Some(s3) => {
                tracing::info!(bucket = %s3.bucket, endpoint = %s3.endpoint, prefix = %s3.prefix, "storage: S3");
                // A bucket that is missing or refuses the key is a config
                // error; fail now rather than on the first push.
                if let Err(e) = server.registry().storage().probe().await {
                    let msg = e.to_string();
                    let (msg, hint) = match msg.split_once("; hint: ") {
                        Some((m, h)) => (m.to_string(), h.to_string()),
                        None => (msg.clone(), crate::registry::storage::s3::hint_for(&msg).into()),
                    };
                    return Err(CliError::new(format!("storage.s3 (bucket {} at {}) cannot be used: {msg}", s3.bucket, s3.endpoint), hint));
                }
            }
            None => tracing::info!(data = %config.storage_root.display(), "storage"),
        }
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
        print_start(&config, &server, addr);
        tracing::info!(public = %format!("{}://{addr}", server.scheme()), admin = %admin_addr.map(|a| format!("http://{a}")).unwrap_or_else(|| "off".into()), "listeners");
        if let Some(a) = admin_addr {
            println!("regproxy: admin endpoints on http://{a} (/healthz, /readyz, /metrics, /gc)");
        }
        let shutdown = shutdown_signal();
        println!("regproxy: listening on {}://{addr}", server.scheme());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run(listener, shutdown).await;
        tracing::info!("stopped");
        Ok(())
    });
    // Tasks still running after the drain timeout (stuck connections) are
    // dropped rather than waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// What a person starting the server needs: the first `admin` password,
/// the CA fingerprint, the host clients should use (one that reaches this
/// server and that the certificate holds) and how clients come to trust it.
/// All public except the password, which is shown once and never logged.
fn print_start(config: &Config, server: &crate::proxy::Server, addr: SocketAddr) {
    let htpasswd = config
        .auth
        .as_ref()
        .map(|a| a.htpasswd.display().to_string())
        .unwrap_or_default();
    if let Some(password) = server.initial_admin() {
        println!(
            "regproxy: created user `admin` with password {} (in {htpasswd}); it is shown only this once",
            password.expose()
        );
        println!("regproxy: change it with: regproxy htpasswd add admin --file {htpasswd}");
    }
    let preferred = match &config.tls {
        TlsMode::Auto { extra, .. } => extra.clone(),
        _ => SubjectNames::default(),
    };
    let tls = server.tls();
    let cert_names = tls.map(|t| t.info.names());
    let hosts = names::client_hosts(addr.ip(), &preferred, cert_names.as_ref());
    let port = addr.port();
    let hp = names::host_port(&hosts.best, port);
    let trust_cmd = {
        let mut c = format!("regproxy trust --host {} --port {port}", hosts.best);
        if let Some(p) = config
            .source
            .as_ref()
            .filter(|p| *p != Path::new(config::DEFAULT_FILE))
        {
            c.push_str(&format!(" --config {}", p.display()));
        }
        c
    };
    match (
        server.generated_certificate(),
        tls.and_then(|t| t.ca_fingerprint()),
    ) {
        (Some(issued), _) => {
            let what = if issued.ca_created {
                "a CA and a server certificate"
            } else {
                "a server certificate (signed by the existing CA)"
            };
            println!(
                "regproxy: made {what} in {} for {}",
                issued.dir.display(),
                issued.names.list().join(", ")
            );
            // The commands are printed without a prefix, so they paste as they are.
            for line in tls::trust::instructions(&hosts.best, port, &issued.ca_fingerprint).lines()
            {
                if line.starts_with(' ') {
                    println!("{line}");
                } else {
                    println!("regproxy: {line}");
                }
            }
        }
        (None, Some(fp)) => {
            println!("regproxy: CA fingerprint (SHA-256): {}", fp.colon_hex());
            println!("regproxy: the commands that make a client trust it: {trust_cmd}");
            println!("regproxy: log in with: docker login {hp}");
        }
        (None, None) => {
            if config.auth.is_some() {
                println!("regproxy: log in with: docker login {hp}");
            }
        }
    }
    if let (Some(t), Some(names)) = (tls, &cert_names) {
        if !names.covers(&hosts.best) {
            let fix = match &config.tls {
                TlsMode::Auto { dir, .. } => format!(
                    "add it (keeping the others) with: regproxy gen-cert --host {} --out {}",
                    hosts.best,
                    dir.display()
                ),
                _ => "use a certificate that includes it".to_string(),
            };
            println!(
                "regproxy: warning: the certificate {} is not valid for {}, so clients will refuse it; {fix}",
                t.cert_path().display(),
                hosts.best
            );
        }
    }
    if !hosts.others.is_empty() {
        let others: Vec<String> = hosts
            .others
            .iter()
            .map(|h| names::host_port(h, port))
            .collect();
        println!(
            "regproxy: clients may also use {} (regproxy trust --host NAME prints the commands for one)",
            others.join(", ")
        );
    }
}

/// Log lines to stderr: `key=value` text, or one JSON object per line
/// (`log.format: json`). `RUST_LOG` filters, e.g. `info,regproxy::access=off`.
fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rustls warns on every client that sends an IP address as SNI
        // (wrk, some scanners): normal, not worth a line per connection.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
        config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
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

/// glibc's malloc gives each thread that allocates an arena of its own, up
/// to 8 per core, and keeps what is freed in each; with uploads handing
/// buffers between the reactor and the blocking pool, that memory is held
/// many times over. One arena per core keeps the resting size and the peak
/// under many uploads small (issue 13) at no measurable cost in speed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return; // the operator's own setting wins
    }
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets a tunable; called before the runtime's threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
