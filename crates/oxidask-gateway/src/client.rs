//! The gateway from a Rust program: [`Gateway`] lists, creates, scales and stops the caller's
//! clusters over the REST API, and hands out [`oxidask_client::Client`]s of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use oxidask_client::{Client, Security};
use serde_json::{json, Value};

use crate::GatewayError;

/// How the gateway is told who is asking.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// No credentials (a gateway run with `--no-auth`).
    None,
}

impl Auth {
    fn header(&self) -> Option<String> {
        match self {
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                crate::auth::encode_base64(format!("{user}:{password}").as_bytes())
            )),
            Auth::None => None,
        }
    }
}

/// A connection to an `oxidask gateway`.
#[derive(Debug, Clone)]
pub struct Gateway {
    host_port: String,
    auth: Auth,
    timeout: Duration,
}

/// One of the caller's clusters on a gateway.
#[derive(Debug, Clone)]
pub struct GatewayCluster {
    gateway: Gateway,
    /// The cluster's name.
    pub name: String,
    /// The scheduler's address.
    pub scheduler_address: String,
    /// The scheduler's dashboard.
    pub dashboard_link: Option<String>,
    token: String,
}

impl Gateway {
    /// The gateway at `address` (`http://host:port`).
    pub fn new(address: &str, auth: Auth) -> Gateway {
        let host_port = address
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Gateway {
            host_port,
            auth,
            timeout: Duration::from_secs(60),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, GatewayError> {
        let io =
            |e: std::io::Error| GatewayError::Backend(format!("gateway {}: {e}", self.host_port));
        let mut stream = TcpStream::connect(&self.host_port).map_err(io)?;
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host_port,
            payload.len()
        );
        if body.is_some() {
            req.push_str("Content-Type: application/json\r\n");
        }
        if let Some(h) = self.auth.header() {
            req.push_str(&format!("Authorization: {h}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&payload);
        stream.write_all(req.as_bytes()).map_err(io)?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).map_err(io)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GatewayError::Backend(format!("not an HTTP answer: {status_line:?}")))?;
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(io)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let mut text = Vec::new();
        match length {
            Some(n) => {
                text.resize(n, 0);
                reader.read_exact(&mut text).map_err(io)?;
            }
            None => {
                reader.read_to_end(&mut text).map_err(io)?;
            }
        }
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&text).map_err(|e| {
                GatewayError::Backend(format!("the gateway answered {status} with bad JSON: {e}"))
            })?
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Err(match status {
            400 => GatewayError::BadRequest(message),
            401 => GatewayError::Unauthorized(message),
            403 => GatewayError::Forbidden(message),
            404 => GatewayError::NotFound(message),
            409 => GatewayError::Conflict(message),
            _ => GatewayError::Backend(format!("HTTP {status}: {message}")),
        })
    }

    /// The caller's starting and running clusters, by name (the API's JSON for each).
    pub fn list_clusters(&self) -> Result<serde_json::Map<String, Value>, GatewayError> {
        match self.request("GET", "/api/v1/clusters/", None)? {
            Value::Object(m) => Ok(m),
            other => Err(GatewayError::Backend(format!("unexpected answer {other}"))),
        }
    }

    /// Creates a cluster with `options` (`{"worker_threads": 2, "worker_memory": "1GiB",
    /// "workers": 1}`, any missing) and waits until its scheduler runs.
    pub fn new_cluster(&self, options: &Value) -> Result<GatewayCluster, GatewayError> {
        let created = self.request(
            "POST",
            "/api/v1/clusters/",
            Some(&json!({"cluster_options": options})),
        )?;
        let name = created
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| GatewayError::Backend("no cluster name in the answer".into()))?;
        self.connect(name)
    }

    /// The caller's running cluster `name` (waiting while it starts).
    pub fn connect(&self, name: &str) -> Result<GatewayCluster, GatewayError> {
        let c = self.request("GET", &format!("/api/v1/clusters/{name}?wait=true"), None)?;
        let text = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
        match text("status").as_deref() {
            Some("RUNNING") => {}
            other => {
                return Err(GatewayError::Conflict(format!(
                    "cluster {name} is {}: {}",
                    other.unwrap_or("unknown"),
                    text("error").unwrap_or_default()
                )))
            }
        }
        Ok(GatewayCluster {
            gateway: self.clone(),
            name: name.to_owned(),
            scheduler_address: text("scheduler_address").unwrap_or_default(),
            dashboard_link: text("dashboard_link"),
            token: text("token").unwrap_or_default(),
        })
    }

    /// Stops the caller's cluster `name`.
    pub fn stop_cluster(&self, name: &str) -> Result<(), GatewayError> {
        self.request("DELETE", &format!("/api/v1/clusters/{name}"), None)
            .map(|_| ())
    }
}

impl GatewayCluster {
    /// Asks for `n` workers (adaptive scaling stops).
    pub fn scale(&self, n: usize) -> Result<(), GatewayError> {
        self.gateway
            .request(
                "POST",
                &format!("/api/v1/clusters/{}/scale", self.name),
                Some(&json!({"count": n})),
            )
            .map(|_| ())
    }

    /// Scales between `minimum` and `maximum` workers with the work.
    pub fn adapt(&self, minimum: usize, maximum: usize) -> Result<(), GatewayError> {
        self.gateway
            .request(
                "POST",
                &format!("/api/v1/clusters/{}/adapt", self.name),
                Some(&json!({"minimum": minimum, "maximum": maximum, "active": true})),
            )
            .map(|_| ())
    }

    /// The cluster as the gateway reports it (status, workers asked for, adaptive range).
    pub fn report(&self) -> Result<Value, GatewayError> {
        self.gateway
            .request("GET", &format!("/api/v1/clusters/{}", self.name), None)
    }

    /// The newest lines of its scheduler's and workers' logs.
    pub fn logs(&self) -> Result<Vec<String>, GatewayError> {
        let v =
            self.gateway
                .request("GET", &format!("/api/v1/clusters/{}/logs", self.name), None)?;
        Ok(v.get("logs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The security (the cluster's token) a client of this cluster presents.
    pub fn security(&self) -> Security {
        Security::plain().with_token(self.token.clone())
    }

    /// A client of the cluster.
    pub fn client(&self) -> Result<Client, GatewayError> {
        Client::builder()
            .address(self.scheduler_address.clone())
            .security(self.security())
            .connect()
            .map_err(|e| GatewayError::Backend(format!("connecting to {}: {e}", self.name)))
    }

    /// Stops the cluster.
    pub fn shutdown(&self) -> Result<(), GatewayError> {
        self.gateway.stop_cluster(&self.name)
    }
}
