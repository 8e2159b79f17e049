//! The HTTP edge: routing (DESIGN §1), the import action, the pass-through proxy, discovery, tasks,
//! health and metrics, and the one place errors become HTTP responses.

mod discovery;
mod error;
mod glance_route;
mod health;
mod import_request;
mod proxy;
mod pyjson;
mod slots;
mod task_view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use discovery::{add_method, with_method, METHOD};
pub use error::{wants_json, ApiError, UNAUTHORIZED_HTML};
pub use glance_route::import_target;
pub use import_request::{
    check_fields, check_flags, check_target, classify, Classified, MAX_IMPORT_BODY,
};
pub use proxy::{strip_hop_by_hop, upstream_uri, HOP_BY_HOP};
pub use pyjson::{method_name, MethodName};
pub use slots::{ProjectSlot, ProjectSlots};

use crate::config::Config;
use crate::glance::Glance;
use crate::http::{client_with_tls, BoxBody, HttpClient};
use crate::import::Importer;
use crate::journal::{Journal, JournalError};
use crate::keystone::Keystone;
use crate::metrics::Metrics;
use crate::tasks::Tasks;

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("task_journal: {0}")]
    Journal(#[from] JournalError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Everything a request handler needs, shared by all connections.
pub struct App {
    pub config: Config,
    /// The server identity when serving HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub client: HttpClient,
    pub glance: Glance,
    pub keystone: Keystone,
    pub tasks: Arc<Tasks>,
    pub importer: Arc<Importer>,
    pub metrics: Arc<Metrics>,
    /// Imports running per project (`max_imports_per_project`).
    pub project_slots: Arc<ProjectSlots>,
    /// The fronted Glance's store list, read at most once per `stores::cache::TTL`.
    pub stores: crate::stores::StoresCache,
}

impl App {
    /// Builds the shared state; fails if the task journal or the TLS files cannot be used.
    pub fn new(config: Config) -> Result<Arc<App>, StartError> {
        let trust = crate::tls::client_config(config.ca_file.as_deref())?;
        let client = client_with_tls(config.connect_timeout, trust.clone());
        let tls = match &config.tls {
            Some((cert, key)) => Some(crate::tls::server_config(cert, key)?),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let glance =
            Glance::new(client.clone(), config.request_timeout).with_metrics(metrics.clone());
        let keystone = Keystone::new(
            client.clone(),
            &config.auth_url,
            config.request_timeout,
            config.token_cache_ttl,
        );
        let task_limits = crate::tasks::Limits {
            per_image: config.max_tasks_per_image,
            per_project: config.max_tasks_per_project,
            total: config.max_finished_tasks,
        };
        let journal = match &config.task_journal {
            Some(path) => Some(Journal::open_with(
                path,
                crate::journal::Limits {
                    max_bytes: config.task_journal_max_bytes,
                    finished: task_limits,
                },
            )?),
            None => None,
        };
        let sources = Glance::new(
            crate::http::source_client(config.connect_timeout, trust),
            config.request_timeout,
        )
        .with_metrics(metrics.clone());
        let importer = Arc::new(Importer::new(
            &config,
            &client,
            &glance,
            &sources,
            &keystone,
            metrics.clone(),
            journal,
        ));
        let project_slots = Arc::new(ProjectSlots::new(config.max_imports_per_project));
        Ok(Arc::new(App {
            config,
            tls,
            client,
            glance,
            keystone,
            tasks: Arc::new(Tasks::new(task_limits)),
            importer,
            metrics,
            project_slots,
            stores: Default::default(),
        }))
    }
}

impl App {
    /// Reads the task journal: earlier tasks become visible again, and imports interrupted by a
    /// crash are marked `failure` while their images are restored in the background.
    pub fn start_recovery(self: &Arc<Self>) -> Result<(), JournalError> {
        let Some(journal) = self.importer.journal.clone() else {
            return Ok(());
        };
        let interrupted = crate::recovery::replay(&journal, &self.tasks)?;
        if !interrupted.is_empty() {
            tracing::warn!(
                count = interrupted.len(),
                "Found imports interrupted by a restart"
            );
        }
        tokio::spawn(crate::recovery::restore(
            interrupted,
            self.glance.clone(),
            crate::recovery::Scope {
                glance_url: self.config.glance_url.clone(),
                prefixes: self.config.extra_properties.clone(),
                injected: self.config.inject.iter().map(|(k, _)| k.clone()).collect(),
            },
            self.keystone.clone(),
            self.config.service_credentials.clone(),
            self.tasks.clone(),
            journal,
        ));
        Ok(())
    }
}

/// Routes one request (DESIGN §1).
pub async fn route(app: Arc<App>, mut request: Request<Incoming>) -> Response<BoxBody> {
    let request_id = RequestId::new();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.0,
        method = %request.method(),
        path = %request.uri().path(),
    );
    request.extensions_mut().insert(request_id);
    let response = route_inner(app, request).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "Answered"));
    response
}

/// The id this sidecar gives a request: in every log line about it, and the `202`'s
/// `x-openstack-request-id` for an import (which its task records).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> Self {
        RequestId(format!("req-{}", uuid::Uuid::new_v4()))
    }
}

async fn route_inner(app: Arc<App>, request: Request<Incoming>) -> Response<BoxBody> {
    let json = error::wants_json(request.headers());
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    // Every request Glance itself would route to its import action, however spelt.
    let import_id = glance_route::import_target(&method, request.uri(), request.headers());
    let result = match (&method, segments.as_slice()) {
        _ if import_id.is_some() => {
            let id = import_id.unwrap_or_default();
            import_request::handle(&app, request, &id).await
        }
        (&Method::GET, ["v2", "info", "import"]) => discovery::info_import(&app, request).await,
        (&Method::POST, ["v2", "images"]) => discovery::create_image(&app, request).await,
        (&Method::GET, ["v2", "images", id, "tasks"]) => task_view::list(&app, request, id).await,
        (&Method::GET, ["healthcheck"]) => Ok(health::healthcheck(&app).await),
        (&Method::GET, ["metrics"]) => Ok(health::metrics(&app)),
        _ => proxy::forward(&app, request).await,
    };
    result.unwrap_or_else(|error| error.into_response(&app.config.auth_url, json))
}

/// A running sidecar listener.
pub struct Server {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and serves until [`Server::shutdown`].
    pub async fn bind(app: Arc<App>, addr: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let service_app = app.clone();
        let service = move |request, _peer| route(service_app.clone(), request);
        let tls = app.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let limits = crate::http::ServeLimits {
            header_timeout: app.config.client_timeout,
            write_stall: app.config.stall_timeout,
            max_connections: app.config.max_connections,
            open: app.metrics.connections_open.clone(),
        };
        let handle = tokio::spawn(crate::http::serve_with(
            listener,
            tls,
            limits,
            service,
            shutdown.clone(),
        ));
        Ok(Server {
            addr,
            app,
            shutdown,
            handle,
        })
    }

    /// The base URL clients use.
    pub fn url(&self) -> String {
        let scheme = if self.app.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, gives running imports `grace` to finish, then aborts the rest (they
    /// revert their images) and waits for them to wind down.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        let _ = self.handle.await;
        let importer = &self.app.importer;
        importer.running.close();
        if tokio::time::timeout(grace, importer.running.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = importer.running.len(),
                "Aborting imports still running after the grace period"
            );
            importer.abort.cancel();
            importer.running.wait().await;
        }
    }

    /// Resolves when the accept loop ends.
    pub async fn wait(&mut self) {
        let _ = (&mut self.handle).await;
    }
}
