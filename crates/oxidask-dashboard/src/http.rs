//! The HTTP side: pages, the websocket that feeds them, `/metrics`, and JSON endpoints for
//! what is asked on demand (a key's story, the graph, logs).
//!
//! Every browser gets the same tick messages through one broadcast channel: a browser that
//! falls behind is sent the whole state again (never a growing queue), and a stuck one is
//! dropped when its socket stops taking data.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use oxidask_scheduler::server::{Answer, Monitor, Query};
use serde_json::json;
use tokio::sync::broadcast;

use crate::view::View;

/// What handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub view: Arc<Mutex<View>>,
    pub ticks: broadcast::Sender<Arc<str>>,
    pub monitor: Monitor,
    pub logs: fn() -> Vec<String>,
}

const PAGE: &str = include_str!("../assets/page.html");
const APP_JS: &str = include_str!("../assets/app.js");
pub(crate) const DRAW_JS: &str = include_str!("../assets/draw.js");
pub(crate) const STYLE_CSS: &str = include_str!("../assets/style.css");

/// The pages, as Dask names them.
pub(crate) const PAGES: [&str; 8] = [
    "status", "workers", "tasks", "system", "graph", "story", "errors", "logs",
];

pub(crate) fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/", get(|| async { Redirect::temporary("/status") }))
        .route("/workers/{name}", get(worker_page))
        .route(
            "/static/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/static/draw.js",
            get(|| async { asset(DRAW_JS, "text/javascript") }),
        )
        .route(
            "/static/style.css",
            get(|| async { asset(STYLE_CSS, "text/css") }),
        )
        .route("/ws", get(websocket))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/api/state", get(full_state))
        .route("/api/story", get(story))
        .route("/api/graph", get(graph))
        .route("/api/logs", get(logs));
    for p in PAGES {
        r = r.route(&format!("/{p}"), get(move || async move { page(p, "") }));
    }
    r.with_state(state)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn page(name: &str, arg: &str) -> Html<String> {
    Html(
        PAGE.replace("{{PAGE}}", name)
            .replace("{{ARG}}", &html_escape(arg)),
    )
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn worker_page(Path(name): Path<String>) -> Html<String> {
    page("worker", &name)
}

async fn metrics(State(s): State<AppState>) -> Response {
    let body = {
        let v = s.view.lock().unwrap_or_else(|p| p.into_inner());
        crate::metrics::render(&v)
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn full_state(State(s): State<AppState>) -> Response {
    let body = s.view.lock().unwrap_or_else(|p| p.into_inner()).full_json();
    json_response(body)
}

/// Asks the scheduler's core, off the async thread.
async fn ask(monitor: Monitor, q: Query) -> Option<Answer> {
    tokio::task::spawn_blocking(move || monitor.ask(q, Duration::from_secs(10)))
        .await
        .ok()
        .flatten()
}

async fn story(
    State(s): State<AppState>,
    UrlQuery(q): UrlQuery<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(key) = q.get("key").cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            "give the key: /api/story?key=inc-…",
        )
            .into_response();
    };
    match ask(s.monitor, Query::Story(key.clone())).await {
        Some(Answer::Story(lines)) => {
            json_response(json!({"key": key, "transitions": lines}).to_string())
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the scheduler did not answer",
        )
            .into_response(),
    }
}

async fn graph(
    State(s): State<AppState>,
    UrlQuery(q): UrlQuery<std::collections::HashMap<String, String>>,
) -> Response {
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(2_000)
        .min(20_000);
    match ask(s.monitor, Query::Graph(limit)).await {
        Some(Answer::Graph(g)) => {
            let nodes: Vec<_> = g
                .nodes
                .iter()
                .map(|n| json!([n.key, n.prefix, n.state]))
                .collect();
            json_response(
                json!({"nodes": nodes, "edges": g.edges, "total": g.total, "limit": limit})
                    .to_string(),
            )
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the scheduler did not answer",
        )
            .into_response(),
    }
}

async fn logs(
    State(s): State<AppState>,
    UrlQuery(q): UrlQuery<std::collections::HashMap<String, String>>,
) -> Response {
    let lines = match q.get("worker") {
        None => (s.logs)(),
        Some(w) => match ask(s.monitor, Query::WorkerLogs(w.clone())).await {
            Some(Answer::WorkerLogs(lines)) => lines,
            _ => Vec::new(),
        },
    };
    json_response(json!({"lines": lines}).to_string())
}

async fn websocket(ws: WebSocketUpgrade, State(s): State<AppState>) -> Response {
    ws.on_upgrade(move |socket| feed(socket, s))
}

/// Sends a page the whole state, then every tick; the whole state again after a lag.
async fn feed(mut socket: WebSocket, s: AppState) {
    let mut rx = s.ticks.subscribe();
    let full = s.view.lock().unwrap_or_else(|p| p.into_inner()).full_json();
    if socket.send(Message::Text(full.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let text: String = match msg {
                    Ok(t) => t.to_string(),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        s.view.lock().unwrap_or_else(|p| p.into_inner()).full_json()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // A browser that cannot take a message within 10 s is dropped.
                match tokio::time::timeout(Duration::from_secs(10), socket.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}
