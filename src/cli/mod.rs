//! The command line: `regproxy serve` and `regproxy config check`.
//!
//! Every failure prints `regproxy: error: ...`, its causes, and a
//! `hint: ...` saying what to do, then exits non-zero (64 for a bad config,
//! 1 otherwise). Nothing here panics on user input.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};
use crate::tls::{self, certs, TlsMode};

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
    Serve(ServeArgs),
    /// Make a local CA (once) and a server certificate signed by it.
    #[command(
        after_help = "Clients then trust certs/ca.crt instead of using insecure-registries; \
the command prints how, for Docker, podman/skopeo, containerd/k3s and the OS store."
    )]
    GenCert(GenCertArgs),
    /// Manage users in an htpasswd file (bcrypt, Apache-compatible).
    Htpasswd {
        #[command(subcommand)]
        command: HtpasswdCommand,
    },
    /// Explain the access rules.
    Acl {
        #[command(subcommand)]
        command: AclCommand,
    },
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
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

#[derive(Debug, clap::Args)]
struct GenCertArgs {
    /// DNS name (or IP address) clients use to reach the registry; repeatable
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// IP address clients use to reach the registry; repeatable
    #[arg(long = "ip", value_name = "ADDRESS")]
    ips: Vec<std::net::IpAddr>,
    /// Directory for ca.crt, ca.key, server.crt, server.key
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// Validity of the server certificate, in days
    #[arg(long, default_value_t = certs::DEFAULT_SERVER_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Replace an existing CA (clients must then trust the new one)
    #[arg(long)]
    force: bool,
    /// Port clients use, for the printed trust commands
    #[arg(long, default_value_t = 5000)]
    port: u16,
}

#[derive(Debug, Subcommand)]
enum HtpasswdCommand {
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

#[derive(Debug, Subcommand)]
enum AclCommand {
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

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config file and list every problem in it.
    Check {
        /// Config file
        #[arg(long, short, default_value = config::DEFAULT_FILE)]
        config: PathBuf,
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
    fn new(message: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: Some(hint.into()),
            code: 1,
        }
    }
}

impl CliError {
    /// Exit with `code` and no message (the output already said it all).
    fn silent(code: u8) -> CliError {
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
        Command::Serve(args) => serve(args),
        Command::GenCert(args) => gen_cert(args),
        Command::Htpasswd { command } => htpasswd_cmd(command),
        Command::Acl {
            command:
                AclCommand::Check {
                    user,
                    repo,
                    action,
                    groups,
                    config,
                },
        } => acl_check(&user, &repo, &action, groups, &config),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let c = Config::load(&config)?;
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
    }
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

fn htpasswd_cmd(command: HtpasswdCommand) -> Result<(), CliError> {
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

fn acl_check(
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

fn gen_cert(args: GenCertArgs) -> Result<(), CliError> {
    let mut names = certs::SubjectNames::default();
    for h in &args.hosts {
        names
            .add_host(h)
            .map_err(|e| CliError::new(e.to_string(), e.hint()))?;
    }
    for ip in &args.ips {
        names.add_ip(*ip);
    }
    let issued = certs::issue(&args.out, &names, args.days, args.force)
        .map_err(|e| CliError::new(e.to_string(), e.hint()))?;
    let dir = args.out.display();
    if issued.ca_created {
        println!("created a new CA:        {dir}/ca.crt (install on clients), {dir}/ca.key (keep private)");
    } else {
        println!("using the existing CA:   {dir}/ca.crt");
    }
    println!("server certificate:      {dir}/server.crt, {dir}/server.key");
    println!("  for names:             {}", issued.names.dns.join(", "));
    if !issued.names.ips.is_empty() {
        let ips: Vec<String> = issued.names.ips.iter().map(|i| i.to_string()).collect();
        println!("  for addresses:         {}", ips.join(", "));
    }
    println!("  valid until:           {}", issued.not_after.date());
    println!();
    let host = issued
        .names
        .dns
        .first()
        .cloned()
        .or_else(|| issued.names.ips.first().map(|i| i.to_string()))
        .unwrap_or_else(|| "HOST".into());
    print!(
        "{}",
        tls::trust::instructions(&host, args.port, &issued.ca_fingerprint)
    );
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), CliError> {
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
