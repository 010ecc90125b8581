//! The REST API (Dask Gateway's shape, under `/api/v1`) and the loop that makes clusters'
//! processes match what their users asked for.
//!
//! | request | does |
//! |---|---|
//! | `GET /api/health` | `{"status": "pass"}` |
//! | `GET /api/v1/options` | the cluster options, their defaults and this gateway's limits |
//! | `GET /api/v1/clusters/` | the caller's starting and running clusters, by name |
//! | `POST /api/v1/clusters/` `{"cluster_options": {...}}` | creates a cluster: `{"name": ...}` |
//! | `GET /api/v1/clusters/NAME[?wait=true]` | one cluster (waiting until it has started) |
//! | `DELETE /api/v1/clusters/NAME` | stops it |
//! | `POST /api/v1/clusters/NAME/scale` `{"count": n}` | asks for `n` workers |
//! | `POST /api/v1/clusters/NAME/adapt` `{"minimum": a, "maximum": b, "active": true}` | adaptive |
//! | `GET /api/v1/clusters/NAME/logs` | the newest lines of its scheduler and workers |
//!
//! Every request but the health check carries credentials (see [`crate::auth`]); answers are
//! JSON, errors `{"error": "..."}` with 400/401/403/404/409.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use oxidask_client::{AdaptiveCore, Client, Decision};
use serde_json::{json, Value};

use crate::auth::Authenticator;
use crate::backend::{ClusterProcesses, Launcher};
use crate::registry::{AdaptRange, ClusterOptions, Limits, Registry, Status};
use crate::GatewayError;

/// How adaptive clusters are scaled.
#[derive(Debug, Clone)]
pub struct AdaptSettings {
    /// How often the gateway asks each adaptive cluster's scheduler for a recommendation.
    pub interval: Duration,
    /// Consecutive recommendations to scale down before workers are retired (hysteresis;
    /// scaling up happens at once).
    pub wait_count: u32,
    /// How long the queued and running work should take with the recommended workers.
    pub target_duration: Duration,
}

impl Default for AdaptSettings {
    fn default() -> AdaptSettings {
        AdaptSettings {
            interval: Duration::from_secs(1),
            wait_count: 3,
            target_duration: Duration::from_secs(5),
        }
    }
}

type Procs = Arc<Mutex<ClusterProcesses>>;

/// The gateway's state, shared by the API and the reconciling loop.
pub struct Gateway {
    registry: Mutex<Registry>,
    processes: Mutex<HashMap<String, Procs>>,
    auth: Authenticator,
    launcher: Launcher,
    adapt: AdaptSettings,
    poke: (Mutex<bool>, Condvar),
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system's random source");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Gateway {
    /// A gateway with these users, limits, process launcher and adaptive settings.
    pub fn new(
        auth: Authenticator,
        limits: Limits,
        launcher: Launcher,
        adapt: AdaptSettings,
    ) -> Arc<Gateway> {
        Arc::new(Gateway {
            registry: Mutex::new(Registry::new(limits)),
            processes: Mutex::new(HashMap::new()),
            auth,
            launcher,
            adapt,
            poke: (Mutex::new(false), Condvar::new()),
            closed: AtomicBool::new(false),
        })
    }

    fn user(&self, headers: &HeaderMap) -> Result<String, GatewayError> {
        let h = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.auth.user(h)
    }

    fn wake(&self) {
        let (m, c) = &self.poke;
        *lock(m) = true;
        c.notify_all();
    }

    fn create(self: &Arc<Self>, user: &str, body: &Value) -> Result<String, GatewayError> {
        let options = {
            let reg = lock(&self.registry);
            ClusterOptions::from_json(
                body.get("cluster_options").unwrap_or(&Value::Null),
                reg.limits(),
            )?
        };
        let token = random_hex(24);
        let salt = u64::from_str_radix(&random_hex(8), 16).unwrap_or(0);
        let name = lock(&self.registry)
            .create(
                user,
                options.clone(),
                token.clone(),
                salt,
                SystemTime::now(),
            )?
            .name
            .clone();
        let gw = self.clone();
        let n = name.clone();
        std::thread::spawn(move || match gw.launcher.start(&n, &options, &token) {
            Ok(p) => {
                let (address, dashboard) =
                    (p.address().to_owned(), p.dashboard().map(str::to_owned));
                lock(&gw.processes).insert(n.clone(), Arc::new(Mutex::new(p)));
                lock(&gw.registry).started(&n, address, dashboard);
                tracing::info!(cluster = %n, "cluster started");
                gw.wake();
            }
            Err(e) => {
                tracing::warn!(cluster = %n, "cluster failed to start: {e}");
                lock(&gw.registry).failed(&n, e);
            }
        });
        Ok(name)
    }

    fn stop(self: &Arc<Self>, user: &str, name: &str) -> Result<(), GatewayError> {
        lock(&self.registry).stop(user, name)?;
        let procs = lock(&self.processes).remove(name);
        let gw = self.clone();
        let n = name.to_owned();
        std::thread::spawn(move || {
            if let Some(p) = procs {
                lock(&p).stop();
            }
            lock(&gw.registry).stopped(&n);
        });
        Ok(())
    }

    /// One pass of the reconciling loop: failed schedulers noticed, adaptive recommendations
    /// taken (with the hysteresis of [`AdaptiveCore`]), worker counts made to match.
    fn reconcile(
        &self,
        clients: &mut HashMap<String, Client>,
        cores: &mut HashMap<String, (AdaptRange, AdaptiveCore)>,
    ) {
        let wanted: Vec<(String, usize, Option<AdaptRange>)> = lock(&self.registry)
            .all()
            .filter(|c| c.status == Status::Running)
            .map(|c| (c.name.clone(), c.workers, c.adapt))
            .collect();
        clients.retain(|n, _| wanted.iter().any(|(w, _, _)| w == n));
        cores.retain(|n, _| wanted.iter().any(|(w, _, a)| w == n && a.is_some()));
        for (name, mut n, adapt) in wanted {
            let Some(procs) = lock(&self.processes).get(&name).cloned() else {
                continue;
            };
            let mut p = lock(&procs);
            if !p.scheduler_alive() {
                drop(p);
                lock(&self.registry).failed(&name, "the scheduler process exited".into());
                lock(&self.processes).remove(&name);
                continue;
            }
            if !clients.contains_key(&name) {
                match p.client() {
                    Ok(c) => {
                        clients.insert(name.clone(), c);
                    }
                    Err(e) => tracing::warn!(cluster = %name, "{e}"),
                }
            }
            let client = clients.get(&name);
            if let (Some(range), Some(c)) = (adapt, client) {
                if let Some(decided) = self.adapt_round(&name, range, c, &mut p, cores) {
                    lock(&self.registry).set_adaptive_workers(&name, decided);
                    n = decided;
                }
            }
            if let Err(e) = p.set_workers(n, client) {
                tracing::warn!(cluster = %name, "scaling to {n} workers: {e}");
            }
        }
    }

    /// One round of adaptive scaling for cluster `name`: the scheduler's recommendation through
    /// the hysteresis; retires the workers it settles on. Returns the workers wanted now.
    fn adapt_round(
        &self,
        name: &str,
        range: AdaptRange,
        client: &Client,
        p: &mut ClusterProcesses,
        cores: &mut HashMap<String, (AdaptRange, AdaptiveCore)>,
    ) -> Option<usize> {
        let wait = self.adapt.wait_count as usize;
        let fresh = || {
            let core = AdaptiveCore::new(range.minimum, range.maximum, wait)
                .expect("the registry checked minimum <= maximum");
            (range, core)
        };
        let entry = cores.entry(name.to_owned()).or_insert_with(fresh);
        if entry.0 != range {
            *entry = fresh();
        }
        let core = &mut entry.1;
        let rec = client.adaptive_target(self.adapt.target_duration).ok()?;
        let summary = client.summary().ok()?;
        let plan = p.worker_names();
        let observed: Vec<String> = summary
            .workers
            .iter()
            .filter(|w| plan.contains(&w.name))
            .map(|w| w.name.clone())
            .collect();
        // The scheduler names data addresses; the processes are known by name.
        let to_close: Vec<String> = rec
            .workers_to_close
            .iter()
            .filter_map(|a| summary.workers.iter().find(|w| &w.address == a))
            .map(|w| w.name.clone())
            .collect();
        match core.recommend(rec.target, &plan, &observed, &to_close) {
            Decision::Same => Some(plan.len().clamp(range.minimum, range.maximum)),
            Decision::Up(k) => Some(k),
            Decision::Down(names) => {
                if let Err(e) = p.retire(&names, Some(client)) {
                    tracing::warn!(cluster = %name, "adaptive scale-down: {e}");
                    return Some(plan.len());
                }
                Some(plan.len().saturating_sub(names.len()))
            }
        }
    }

    /// Runs the reconciling loop until the process exits.
    fn run_loop(self: Arc<Self>) {
        let mut clients = HashMap::new();
        let mut cores = HashMap::new();
        while !self.closed.load(Ordering::SeqCst) {
            self.reconcile(&mut clients, &mut cores);
            let (m, c) = &self.poke;
            let mut poked = lock(m);
            if !*poked {
                poked = c
                    .wait_timeout(poked, self.adapt.interval)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            *poked = false;
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = match &self {
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::Conflict(_) => StatusCode::CONFLICT,
            GatewayError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut r = (status, Json(json!({"error": self.to_string()}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer, Basic realm=\"oxidask-gateway\""),
            );
        }
        r
    }
}

type Shared = State<Arc<Gateway>>;

/// A JSON answer (written here: the workspace's axum is built without its `json` feature).
struct Json<T>(T);

impl IntoResponse for Json<Value> {
    fn into_response(self) -> Response {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

fn parse_body(body: &str) -> Result<Value, GatewayError> {
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(body)
        .map_err(|e| GatewayError::BadRequest(format!("the body is not JSON: {e}")))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "pass"}))
}

async fn options(State(gw): Shared, headers: HeaderMap) -> Result<Json<Value>, GatewayError> {
    gw.user(&headers)?;
    let reg = lock(&gw.registry);
    let l = reg.limits();
    Ok(Json(json!({
        "defaults": ClusterOptions::default().to_json(),
        "limits": {
            "max_clusters_per_user": l.max_clusters_per_user,
            "max_workers_per_cluster": l.max_workers_per_cluster,
            "max_workers_per_user": l.max_workers_per_user,
            "max_worker_threads": l.max_worker_threads,
            "max_worker_memory": l.max_worker_memory,
        }
    })))
}

async fn list(State(gw): Shared, headers: HeaderMap) -> Result<Json<Value>, GatewayError> {
    let user = gw.user(&headers)?;
    let reg = lock(&gw.registry);
    let map: serde_json::Map<String, Value> = reg
        .list(&user)
        .into_iter()
        .map(|c| (c.name.clone(), c.to_json()))
        .collect();
    Ok(Json(Value::Object(map)))
}

async fn create(
    State(gw): Shared,
    headers: HeaderMap,
    body: String,
) -> Result<(StatusCode, Json<Value>), GatewayError> {
    let user = gw.user(&headers)?;
    let body = parse_body(&body)?;
    let name = gw.create(&user, &body)?;
    Ok((StatusCode::CREATED, Json(json!({"name": name}))))
}

async fn get_cluster(
    State(gw): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, GatewayError> {
    let user = gw.user(&headers)?;
    let wait = q.get("wait").is_some_and(|v| v != "false" && v != "0");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let json = {
            let reg = lock(&gw.registry);
            let c = reg.get(&user, &name)?;
            if !wait || c.status != Status::Pending || Instant::now() >= deadline {
                Some(c.to_json())
            } else {
                None
            }
        };
        if let Some(j) = json {
            return Ok(Json(j));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delete_cluster(
    State(gw): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, GatewayError> {
    let user = gw.user(&headers)?;
    gw.stop(&user, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn scale(
    State(gw): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Result<StatusCode, GatewayError> {
    let user = gw.user(&headers)?;
    let body = parse_body(&body)?;
    let n = body
        .get("count")
        .and_then(Value::as_u64)
        .ok_or_else(|| GatewayError::BadRequest("scale needs {\"count\": n}".into()))?;
    lock(&gw.registry).scale(&user, &name, n as usize)?;
    gw.wake();
    Ok(StatusCode::NO_CONTENT)
}

async fn adapt(
    State(gw): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Result<StatusCode, GatewayError> {
    let user = gw.user(&headers)?;
    let body = parse_body(&body)?;
    let active = body.get("active").and_then(Value::as_bool).unwrap_or(true);
    let range = if active {
        let get = |k: &str, default: u64| -> Result<usize, GatewayError> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(default as usize),
                Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    GatewayError::BadRequest(format!("{k} must be a whole number ≥ 0"))
                }),
            }
        };
        let max_default = lock(&gw.registry).limits().max_workers_per_cluster as u64;
        Some(AdaptRange {
            minimum: get("minimum", 0)?,
            maximum: get("maximum", max_default)?,
        })
    } else {
        None
    };
    lock(&gw.registry).adapt(&user, &name, range)?;
    gw.wake();
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(
    State(gw): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    let user = gw.user(&headers)?;
    lock(&gw.registry).get(&user, &name)?;
    let procs = lock(&gw.processes).get(&name).cloned();
    let lines = procs.map(|p| lock(&p).logs()).unwrap_or_default();
    Ok(Json(json!({"logs": lines})))
}

/// The API's routes over `gw`.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/v1/options", get(options))
        .route("/api/v1/clusters/", get(list).post(create))
        .route("/api/v1/clusters", get(list).post(create))
        .route(
            "/api/v1/clusters/{name}",
            get(get_cluster).delete(delete_cluster),
        )
        .route("/api/v1/clusters/{name}/scale", post(scale))
        .route("/api/v1/clusters/{name}/adapt", post(adapt))
        .route("/api/v1/clusters/{name}/logs", get(logs))
        .with_state(gw)
}

/// A running gateway: its address, and the handle that stops it.
pub struct RunningGateway {
    /// `http://host:port`.
    pub url: String,
    gateway: Arc<Gateway>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningGateway {
    /// Stops serving and stops every cluster.
    pub fn stop(mut self) {
        self.shutdown_all();
    }

    fn shutdown_all(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.gateway.closed.store(true, Ordering::SeqCst);
        self.gateway.wake();
        let all: Vec<Procs> = lock(&self.gateway.processes)
            .drain()
            .map(|(_, p)| p)
            .collect();
        for p in all {
            lock(&p).stop();
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.shutdown_all();
    }
}

/// Serves `gw` on `address` (`host:port`, port 0 for a free one) from a thread of its own,
/// with the reconciling loop beside it.
pub fn serve(gw: Arc<Gateway>, address: &str) -> Result<RunningGateway, String> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(gw.clone());
    let thread = std::thread::Builder::new()
        .name("oxidask-gateway".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        })
        .map_err(|e| e.to_string())?;
    let looping = gw.clone();
    std::thread::Builder::new()
        .name("oxidask-gateway-reconcile".into())
        .spawn(move || looping.run_loop())
        .map_err(|e| e.to_string())?;
    Ok(RunningGateway {
        url: format!("http://{local}"),
        gateway: gw,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}
