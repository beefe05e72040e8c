//! The front: accepts connections (plain or TLS), and for each request runs
//! the pipeline route -> authorize -> registry, in-process (or, for
//! `/ui/`, the web UI, which does the same).
//!
//! [`Server::new`] prepares everything that can fail at startup (storage,
//! certificates); [`Server::run`] serves a bound listener until a shutdown
//! future completes. The CLI and the tests both use them (as in mini-redis).

mod access_log;
mod admin;
mod admin_gc;
mod drain;
mod idle;
mod limits;
mod listener;
mod pipeline;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::Authorizer;
use crate::config::Config;
use crate::registry::gc::schedule::Schedule;
use crate::registry::gc::GcOptions;
use crate::registry::storage::fs::FsStorage;
use crate::registry::storage::s3::{S3Key, S3Storage, S3Target};
use crate::registry::storage::Storage;
use crate::registry::Registry;
use crate::tls::{TlsError, TlsServer};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot open storage at {path}: {source}")]
    Storage {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot use the S3 storage: {0}")]
    S3(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] crate::auth::SetupError),
}

impl ProxyError {
    pub fn hint(&self) -> String {
        match self {
            ProxyError::Storage { path, .. } => {
                format!("check that {path} exists or can be created, and is writable (storage.filesystem.root or --data)")
            }
            ProxyError::S3(e) => crate::registry::storage::s3::hint_for(e).into(),
            ProxyError::Tls(e) => e.hint(),
            ProxyError::Auth(_) => {
                "check the auth section of proxy.yaml (htpasswd path, token key, ldap)".into()
            }
        }
    }
}

/// The storage the config names: the S3 bucket (`storage.s3`) or the
/// filesystem (`storage.filesystem.root`).
pub fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, ProxyError> {
    match &config.s3 {
        Some(s3) => {
            let creds = s3.credentials.load().map_err(ProxyError::S3)?;
            let target = S3Target {
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                bucket: s3.bucket.clone(),
                prefix: s3.prefix.clone(),
                path_style: s3.path_style,
                redirect_endpoint: s3.redirect_endpoint.clone(),
            };
            let key = S3Key {
                access_key_id: creds.access_key_id,
                secret_access_key: creds.secret_access_key.expose().to_string(),
                session_token: creds.session_token.map(|t| t.expose().to_string()),
            };
            Ok(Arc::new(
                S3Storage::open(&target, key).map_err(ProxyError::S3)?,
            ))
        }
        None => Ok(Arc::new(FsStorage::open(&config.storage_root).map_err(
            |source| ProxyError::Storage {
                path: config.storage_root.display().to_string(),
                source,
            },
        )?)),
    }
}

/// A ready-to-run front: storage opened, certificates loaded, users read.
pub struct Server {
    front: Arc<pipeline::Front>,
    tls: Option<Arc<TlsServer>>,
    /// The password of the `admin` user made on this first start, if any.
    initial_admin: Option<crate::auth::secret::Secret>,
    /// The config file, re-read for `groups:` and `access:` on change or SIGHUP.
    config_source: Option<std::path::PathBuf>,
    limits: crate::config::Limits,
    /// Garbage collection and the purge of abandoned uploads.
    housekeeping: Schedule,
    /// `/healthz`, `/readyz`, `/metrics` and `/gc`, served when a listener is given.
    admin: Arc<admin::Admin>,
    admin_listener: Option<TcpListener>,
    /// How long a stop waits for requests in flight.
    shutdown_timeout: std::time::Duration,
}

impl Server {
    pub fn new(config: &Config) -> Result<Server, ProxyError> {
        let storage = open_storage(config)?;
        let tls = TlsServer::prepare(&config.tls)?;
        let (authorizer, initial_admin) = match &config.auth {
            None => (Authorizer::open(), None),
            Some(settings) => {
                let admin = crate::auth::bootstrap_admin(settings)?;
                (Authorizer::new(settings, config.policy.clone())?, admin)
            }
        };
        let space = &config.space;
        let gc = GcOptions {
            dry_run: false,
            untagged: space.gc_untagged,
            grace: space.gc_grace,
        };
        let registry = Registry::new(storage);
        let admin = Arc::new(admin::Admin::new(
            config.s3.is_none().then(|| config.storage_root.clone()),
            authorizer.clone(),
            registry.clone(),
            gc,
        ));
        let front = Arc::new(pipeline::Front {
            registry,
            authorizer,
            trust_forwarded_headers: config.trust_forwarded_headers,
            scheme: if tls.is_some() { "https" } else { "http" },
            ca_pem: tls.as_ref().and_then(|t| t.ca_pem.clone()),
            gc: GcOptions {
                dry_run: false,
                untagged: config.space.gc_untagged,
                grace: config.space.gc_grace,
            },
        });
        Ok(Server {
            front,
            tls,
            initial_admin,
            config_source: config.source.clone(),
            limits: config.limits.clone(),
            housekeeping: Schedule {
                gc_every: space.gc_interval,
                gc,
                purge_every: space.purge_every(),
                max_idle: space.upload_max_idle,
            },
            admin,
            admin_listener: None,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// Serves the admin endpoints on `listener` too (from [`Server::run`]
    /// until the stop has finished).
    pub fn with_admin_listener(mut self, listener: TcpListener) -> Server {
        self.admin_listener = Some(listener);
        self
    }

    /// The password of the `admin` user created on this first start (shown
    /// once by the CLI), if one was.
    pub fn initial_admin(&self) -> Option<&crate::auth::secret::Secret> {
        self.initial_admin.as_ref()
    }

    pub fn auth_enabled(&self) -> bool {
        self.front.authorizer.is_enabled()
    }

    /// The certificates this start made with the built-in CA, if any.
    pub fn generated_certificate(&self) -> Option<&crate::tls::certs::Issued> {
        self.tls.as_ref().and_then(|t| t.generated.as_ref())
    }

    /// The TLS front, if this server speaks HTTPS.
    pub fn tls(&self) -> Option<&TlsServer> {
        self.tls.as_deref()
    }

    /// The embedded registry: [`Registry::gc`], [`Registry::last_gc_report`],
    /// [`Registry::usage`] for an admin endpoint.
    pub fn registry(&self) -> &Registry {
        &self.front.registry
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        self.front.scheme
    }

    /// Serves `listener` until `shutdown` completes, then lets requests in
    /// flight finish (bounded by a timeout).
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let watcher = self.tls.as_ref().map(|t| t.spawn_watcher());
        let authorizer = self.front.authorizer.clone();
        // The trigger (and its SIGHUP handler) exists before `run` serves.
        let mut trigger = crate::reload::Trigger::new();
        let users = tokio::spawn(async move {
            loop {
                let forced = trigger.next().await;
                let a = authorizer.clone();
                let _ = tokio::task::spawn_blocking(move || a.reload(forced)).await;
            }
        });
        let rules = match (&self.config_source, self.front.authorizer.is_enabled()) {
            (Some(path), true) => Some(tokio::spawn(watch_rules(
                path.clone(),
                self.front.authorizer.clone(),
            ))),
            _ => None,
        };
        let fd_limit = limits::raise_fd_limit();
        let housekeeping =
            tokio::spawn(self.front.registry.clone().housekeeping(self.housekeeping));
        let admin_task = self
            .admin_listener
            .map(|l| tokio::spawn(admin::serve(l, self.admin.clone(), std::future::pending())));
        let admin = self.admin.clone();
        let shutdown = async move {
            shutdown.await;
            admin.set_stopping();
        };
        listener::serve(
            listener,
            self.front,
            self.tls,
            self.limits,
            fd_limit,
            self.shutdown_timeout,
            shutdown,
        )
        .await;
        housekeeping.abort();
        if let Some(a) = admin_task {
            a.abort();
        }
        users.abort();
        if let Some(r) = rules {
            r.abort();
        }
        if let Some(w) = watcher {
            w.abort();
        }
    }
}

/// Re-reads the config file when it changes (or on SIGHUP) and swaps in its
/// `groups:` and `access:` rules atomically; a broken file keeps the old
/// rules and logs every problem. Other settings need a restart.
async fn watch_rules(path: std::path::PathBuf, authorizer: Authorizer) {
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = mtime(&path);
    let mut trigger = crate::reload::Trigger::new();
    loop {
        let forced = trigger.next().await;
        let now = mtime(&path);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        let p = path.clone();
        match tokio::task::spawn_blocking(move || Config::load(&p)).await {
            // A file caught half-written, or an `access:` section deleted,
            // must not open the registry to every logged-in user.
            Ok(Ok(c)) if authorizer.policy().has_rules() && !c.policy.has_rules() => tracing::warn!(
                config = %path.display(),
                "the new file has no access section; keeping the previous rules (restart to drop all rules)"
            ),
            Ok(Ok(c)) if c.auth.is_some() => {
                for w in &c.warnings {
                    tracing::warn!(line = w.line, "{}", w.message);
                }
                authorizer.set_policy(c.policy);
                tracing::info!(config = %path.display(), "reloaded access rules");
            }
            Ok(Ok(_)) => tracing::warn!("authentication cannot be turned off without a restart; keeping the previous access rules"),
            Ok(Err(e)) => tracing::warn!("keeping the previous access rules: {e}"),
            Err(e) => tracing::warn!(error = %e, "reloading the config failed"),
        }
    }
}

/// Prepares and runs a server in one call.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    Server::new(&config)?.run(listener, shutdown).await;
    Ok(())
}
