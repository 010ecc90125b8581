//! The gateway's bookkeeping, with no I/O: which clusters exist, whose they are, what they
//! were asked to be, and the per-user limits every request is checked against. The server
//! turns requests into calls here first and starts or stops processes only for what this
//! allowed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::GatewayError;

/// Per-user limits (0 means no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Clusters one user may have running or starting at once.
    pub max_clusters_per_user: usize,
    /// Workers in one cluster.
    pub max_workers_per_cluster: usize,
    /// Workers over all of one user's clusters.
    pub max_workers_per_user: usize,
    /// Threads of one worker.
    pub max_worker_threads: usize,
    /// Memory limit of one worker, in bytes.
    pub max_worker_memory: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_clusters_per_user: 4,
            max_workers_per_cluster: 16,
            max_workers_per_user: 32,
            max_worker_threads: 8,
            max_worker_memory: 16 << 30,
        }
    }
}

/// What a user may choose for a cluster (Dask Gateway's "cluster options").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Threads per worker.
    pub worker_threads: usize,
    /// Memory limit per worker in bytes (0: none).
    pub worker_memory: u64,
    /// Workers to start with.
    pub workers: usize,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            worker_threads: 1,
            worker_memory: 1 << 30,
            workers: 0,
        }
    }
}

impl ClusterOptions {
    /// Options from a request's JSON object (`{"worker_threads": 2, "worker_memory": "2 GiB",
    /// "workers": 1}`; any may be missing), checked against `limits`.
    pub fn from_json(v: &Value, limits: &Limits) -> Result<ClusterOptions, GatewayError> {
        let mut o = ClusterOptions::default();
        let Some(map) = v.as_object() else {
            if v.is_null() {
                return Ok(o);
            }
            return Err(GatewayError::BadRequest(
                "cluster_options must be a JSON object".into(),
            ));
        };
        for (k, val) in map {
            match k.as_str() {
                "worker_threads" | "worker_cores" => o.worker_threads = count(k, val)?,
                "workers" => o.workers = count(k, val)?,
                "worker_memory" => o.worker_memory = bytes(k, val)?,
                other => {
                    return Err(GatewayError::BadRequest(format!(
                        "unknown cluster option {other:?}; options are worker_threads, \
                         worker_memory and workers"
                    )))
                }
            }
        }
        if o.worker_threads == 0 {
            return Err(GatewayError::BadRequest(
                "worker_threads must be at least 1".into(),
            ));
        }
        check(
            "worker_threads",
            o.worker_threads as u64,
            limits.max_worker_threads as u64,
        )?;
        check("worker_memory", o.worker_memory, limits.max_worker_memory)?;
        Ok(o)
    }

    /// The options as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "worker_threads": self.worker_threads,
            "worker_memory": self.worker_memory,
            "workers": self.workers,
        })
    }
}

fn count(key: &str, v: &Value) -> Result<usize, GatewayError> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| GatewayError::BadRequest(format!("{key} must be a whole number ≥ 0")))
}

fn bytes(key: &str, v: &Value) -> Result<u64, GatewayError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    if let Some(s) = v.as_str() {
        return oxidask_config::units::parse_size(s).map_err(|e| {
            GatewayError::BadRequest(format!("{key}: {e} (use bytes or a size like \"2 GiB\")"))
        });
    }
    Err(GatewayError::BadRequest(format!(
        "{key} must be a number of bytes or a size string like \"2 GiB\""
    )))
}

fn check(key: &str, value: u64, max: u64) -> Result<(), GatewayError> {
    if max != 0 && value > max {
        return Err(GatewayError::Forbidden(format!(
            "{key} {value} is over this gateway's limit of {max}"
        )));
    }
    Ok(())
}

/// Where a cluster is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its scheduler is starting.
    Pending,
    /// Its scheduler accepts clients.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped by its user.
    Stopped,
    /// Could not start, or its scheduler died.
    Failed,
}

impl Status {
    /// Dask Gateway's name of the status.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Stopping => "STOPPING",
            Status::Stopped => "STOPPED",
            Status::Failed => "FAILED",
        }
    }

    /// Whether the cluster still counts against its user's limits.
    pub fn active(self) -> bool {
        matches!(self, Status::Pending | Status::Running)
    }
}

/// `adapt(minimum, maximum)` of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptRange {
    /// Fewest workers.
    pub minimum: usize,
    /// Most workers.
    pub maximum: usize,
}

/// One cluster, as the gateway knows it.
#[derive(Debug, Clone)]
pub struct ClusterRecord {
    /// Its name (unique on this gateway).
    pub name: String,
    /// Whose it is.
    pub user: String,
    /// Where it is in its life.
    pub status: Status,
    /// What it was started with.
    pub options: ClusterOptions,
    /// Workers asked for (by `scale`, or by adaptive scaling).
    pub workers: usize,
    /// Adaptive range, when adaptive.
    pub adapt: Option<AdaptRange>,
    /// The scheduler's address once running.
    pub scheduler_address: Option<String>,
    /// The scheduler's dashboard once running.
    pub dashboard_link: Option<String>,
    /// The secret clients and workers present to its scheduler.
    pub token: String,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was created.
    pub created: SystemTime,
}

impl ClusterRecord {
    /// The cluster as the REST API shows it to its owner (with the connection token).
    pub fn to_json(&self) -> Value {
        let created = self
            .created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        json!({
            "name": self.name,
            "user": self.user,
            "status": self.status.name(),
            "options": self.options.to_json(),
            "workers": self.workers,
            "adapt": self.adapt.map(|a| json!({"minimum": a.minimum, "maximum": a.maximum})),
            "scheduler_address": self.scheduler_address,
            "dashboard_link": self.dashboard_link,
            "token": self.token,
            "error": self.error,
            "start_time": created,
        })
    }
}

/// Every cluster of the gateway, and the limits.
#[derive(Debug, Default)]
pub struct Registry {
    clusters: BTreeMap<String, ClusterRecord>,
    limits: Limits,
    created: u64,
}

impl Registry {
    /// An empty registry enforcing `limits`.
    pub fn new(limits: Limits) -> Registry {
        Registry {
            clusters: BTreeMap::new(),
            limits,
            created: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn active_of<'a>(&'a self, user: &'a str) -> impl Iterator<Item = &'a ClusterRecord> + 'a {
        self.clusters
            .values()
            .filter(move |c| c.user == user && c.status.active())
    }

    /// Records a new cluster of `user` (status `Pending`), if the user's limits allow it;
    /// `salt` makes the name unguessable (a random value from the caller).
    pub fn create(
        &mut self,
        user: &str,
        options: ClusterOptions,
        token: String,
        salt: u64,
        now: SystemTime,
    ) -> Result<&ClusterRecord, GatewayError> {
        let l = &self.limits;
        let active = self.active_of(user).count();
        if l.max_clusters_per_user != 0 && active >= l.max_clusters_per_user {
            return Err(GatewayError::Forbidden(format!(
                "user {user} already has {active} clusters, this gateway's limit; stop one first"
            )));
        }
        self.check_workers(user, None, options.workers)?;
        self.created += 1;
        let name = format!("{user}.{:x}{:04x}", salt & 0xffff_ffff, self.created);
        let record = ClusterRecord {
            name: name.clone(),
            user: user.to_owned(),
            status: Status::Pending,
            workers: options.workers,
            options,
            adapt: None,
            scheduler_address: None,
            dashboard_link: None,
            token,
            error: None,
            created: now,
        };
        Ok(self.clusters.entry(name).or_insert(record))
    }

    fn check_workers(
        &self,
        user: &str,
        cluster: Option<&str>,
        n: usize,
    ) -> Result<(), GatewayError> {
        let l = &self.limits;
        if l.max_workers_per_cluster != 0 && n > l.max_workers_per_cluster {
            return Err(GatewayError::Forbidden(format!(
                "{n} workers is over this gateway's limit of {} per cluster",
                l.max_workers_per_cluster
            )));
        }
        let others: usize = self
            .active_of(user)
            .filter(|c| Some(c.name.as_str()) != cluster)
            .map(|c| c.adapt.map_or(c.workers, |a| a.maximum.max(c.workers)))
            .sum();
        if l.max_workers_per_user != 0 && others + n > l.max_workers_per_user {
            return Err(GatewayError::Forbidden(format!(
                "user {user} would have {} workers, over this gateway's limit of {} per user",
                others + n,
                l.max_workers_per_user
            )));
        }
        Ok(())
    }

    /// `user`'s cluster `name` (another user's cluster is not found: names are not secrets
    /// to be probed).
    pub fn get(&self, user: &str, name: &str) -> Result<&ClusterRecord, GatewayError> {
        self.clusters
            .get(name)
            .filter(|c| c.user == user)
            .ok_or_else(|| GatewayError::NotFound(format!("no cluster {name:?}")))
    }

    fn get_mut(&mut self, user: &str, name: &str) -> Result<&mut ClusterRecord, GatewayError> {
        self.clusters
            .get_mut(name)
            .filter(|c| c.user == user)
            .ok_or_else(|| GatewayError::NotFound(format!("no cluster {name:?}")))
    }

    fn get_active_mut(
        &mut self,
        user: &str,
        name: &str,
    ) -> Result<&mut ClusterRecord, GatewayError> {
        let c = self.get_mut(user, name)?;
        if !c.status.active() {
            return Err(GatewayError::Conflict(format!(
                "cluster {name:?} is {}",
                c.status.name().to_lowercase()
            )));
        }
        Ok(c)
    }

    /// `user`'s clusters that are starting or running.
    pub fn list<'a>(&'a self, user: &str) -> Vec<&'a ClusterRecord> {
        self.clusters
            .values()
            .filter(|c| c.user == user && c.status.active())
            .collect()
    }

    /// Asks for `n` workers in `user`'s cluster (adaptive scaling stops, as in Dask).
    pub fn scale(&mut self, user: &str, name: &str, n: usize) -> Result<(), GatewayError> {
        self.get_active_mut(user, name)?;
        self.check_workers(user, Some(name), n)?;
        let c = self.get_active_mut(user, name)?;
        c.adapt = None;
        c.workers = n;
        Ok(())
    }

    /// Makes `user`'s cluster adaptive between `minimum` and `maximum` workers (`None` stops).
    pub fn adapt(
        &mut self,
        user: &str,
        name: &str,
        range: Option<AdaptRange>,
    ) -> Result<(), GatewayError> {
        self.get_active_mut(user, name)?;
        if let Some(r) = range {
            if r.minimum > r.maximum {
                return Err(GatewayError::BadRequest(format!(
                    "adapt minimum {} is over maximum {}",
                    r.minimum, r.maximum
                )));
            }
            self.check_workers(user, Some(name), r.maximum)?;
        }
        let c = self.get_active_mut(user, name)?;
        c.adapt = range;
        if let Some(r) = range {
            c.workers = c.workers.clamp(r.minimum, r.maximum);
        }
        Ok(())
    }

    /// Adaptive scaling's decision for a cluster: `n` workers, within its range.
    pub fn set_adaptive_workers(&mut self, name: &str, n: usize) {
        if let Some(c) = self.clusters.get_mut(name) {
            if let (Some(r), true) = (c.adapt, c.status.active()) {
                c.workers = n.clamp(r.minimum, r.maximum);
            }
        }
    }

    /// Starts stopping `user`'s cluster.
    pub fn stop(&mut self, user: &str, name: &str) -> Result<(), GatewayError> {
        let c = self.get_mut(user, name)?;
        if c.status.active() {
            c.status = Status::Stopping;
        }
        Ok(())
    }

    /// The cluster's scheduler is up.
    pub fn started(&mut self, name: &str, address: String, dashboard: Option<String>) {
        if let Some(c) = self.clusters.get_mut(name) {
            if c.status == Status::Pending {
                c.status = Status::Running;
                c.scheduler_address = Some(address);
                c.dashboard_link = dashboard;
            }
        }
    }

    /// The cluster could not start or its scheduler died.
    pub fn failed(&mut self, name: &str, error: String) {
        if let Some(c) = self.clusters.get_mut(name) {
            if c.status.active() {
                c.status = Status::Failed;
                c.error = Some(error);
            }
        }
    }

    /// The cluster's processes are gone.
    pub fn stopped(&mut self, name: &str) {
        if let Some(c) = self.clusters.get_mut(name) {
            if c.status == Status::Stopping {
                c.status = Status::Stopped;
            }
        }
    }

    /// Any cluster by name (for the gateway's own loops).
    pub fn record(&self, name: &str) -> Option<&ClusterRecord> {
        self.clusters.get(name)
    }

    /// Every cluster (for the gateway's own loops).
    pub fn all(&self) -> impl Iterator<Item = &ClusterRecord> {
        self.clusters.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registry {
        Registry::new(Limits {
            max_clusters_per_user: 2,
            max_workers_per_cluster: 4,
            max_workers_per_user: 6,
            max_worker_threads: 2,
            max_worker_memory: 1 << 30,
        })
    }

    fn new(r: &mut Registry, user: &str) -> String {
        r.create(
            user,
            ClusterOptions::default(),
            "t".into(),
            7,
            SystemTime::now(),
        )
        .unwrap()
        .name
        .clone()
    }

    #[test]
    fn clusters_are_private_to_their_user() {
        let mut r = reg();
        let a = new(&mut r, "alice");
        assert_eq!(r.get("alice", &a).unwrap().status, Status::Pending);
        assert!(matches!(r.get("bob", &a), Err(GatewayError::NotFound(_))));
        assert!(matches!(
            r.scale("bob", &a, 1),
            Err(GatewayError::NotFound(_))
        ));
        assert!(matches!(r.stop("bob", &a), Err(GatewayError::NotFound(_))));
        assert_eq!(r.list("alice").len(), 1);
        assert!(r.list("bob").is_empty());
    }

    #[test]
    fn cluster_and_worker_limits_per_user() {
        let mut r = reg();
        let a = new(&mut r, "alice");
        let b = new(&mut r, "alice");
        let e = r
            .create(
                "alice",
                ClusterOptions::default(),
                "t".into(),
                1,
                SystemTime::now(),
            )
            .unwrap_err();
        assert!(
            matches!(e, GatewayError::Forbidden(ref m) if m.contains("limit")),
            "{e}"
        );
        // Another user is not affected.
        new(&mut r, "bob");
        r.scale("alice", &a, 4).unwrap();
        assert!(matches!(
            r.scale("alice", &a, 5),
            Err(GatewayError::Forbidden(_))
        ));
        // 4 + 3 > 6 over both clusters.
        assert!(matches!(
            r.scale("alice", &b, 3),
            Err(GatewayError::Forbidden(_))
        ));
        r.scale("alice", &b, 2).unwrap();
        // Adaptive maxima count against the user's total.
        assert!(r
            .adapt(
                "alice",
                &b,
                Some(AdaptRange {
                    minimum: 1,
                    maximum: 3
                })
            )
            .is_err());
        // A stopped cluster frees its slot.
        r.stop("alice", &a).unwrap();
        r.stopped(&a);
        assert_eq!(r.get("alice", &a).unwrap().status, Status::Stopped);
        assert!(matches!(
            r.scale("alice", &a, 1),
            Err(GatewayError::Conflict(_))
        ));
        new(&mut r, "alice");
    }

    #[test]
    fn adapt_clamps_and_scale_stops_adapting() {
        let mut r = reg();
        let a = new(&mut r, "alice");
        let range = AdaptRange {
            minimum: 1,
            maximum: 3,
        };
        r.adapt("alice", &a, Some(range)).unwrap();
        assert_eq!(r.get("alice", &a).unwrap().workers, 1);
        r.set_adaptive_workers(&a, 10);
        assert_eq!(r.get("alice", &a).unwrap().workers, 3);
        r.set_adaptive_workers(&a, 0);
        assert_eq!(r.get("alice", &a).unwrap().workers, 1);
        r.scale("alice", &a, 2).unwrap();
        assert_eq!(r.get("alice", &a).unwrap().adapt, None);
        r.set_adaptive_workers(&a, 0);
        assert_eq!(r.get("alice", &a).unwrap().workers, 2);
        let bad = AdaptRange {
            minimum: 3,
            maximum: 1,
        };
        assert!(matches!(
            r.adapt("alice", &a, Some(bad)),
            Err(GatewayError::BadRequest(_))
        ));
    }

    #[test]
    fn options_are_checked() {
        let l = reg().limits().clone();
        let o = ClusterOptions::from_json(
            &json!({"worker_threads": 2, "worker_memory": "512 MiB", "workers": 1}),
            &l,
        )
        .unwrap();
        assert_eq!(
            (o.worker_threads, o.worker_memory, o.workers),
            (2, 512 << 20, 1)
        );
        for (bad, want) in [
            (json!({"worker_threads": 3}), "limit"),
            (json!({"worker_threads": 0}), "at least 1"),
            (json!({"worker_memory": "lots"}), "worker_memory"),
            (json!({"gpus": 1}), "unknown cluster option"),
            (json!([1]), "JSON object"),
        ] {
            let e = ClusterOptions::from_json(&bad, &l).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn lifecycle_transitions() {
        let mut r = reg();
        let a = new(&mut r, "alice");
        r.started(&a, "tcp://127.0.0.1:1".into(), None);
        assert_eq!(r.get("alice", &a).unwrap().status, Status::Running);
        r.failed(&a, "scheduler died".into());
        let c = r.get("alice", &a).unwrap();
        assert_eq!(
            (c.status, c.error.as_deref()),
            (Status::Failed, Some("scheduler died"))
        );
        assert!(r.list("alice").is_empty());
        // A failed cluster stays failed when stopped later.
        r.stop("alice", &a).unwrap();
        r.stopped(&a);
        assert_eq!(r.get("alice", &a).unwrap().status, Status::Failed);
    }
}
