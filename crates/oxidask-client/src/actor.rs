//! Calling actors: straight to the data port of the worker holding the actor, over one
//! connection per worker, with replies matched to calls by number. The scheduler is not on
//! the path (Dask's `direct_to_workers` for actors); a caller that cannot reach the worker
//! gets an actor-lost error saying so.
//!
//! [`ActorCaller`] is the untyped layer the Python package uses (arguments and replies are
//! the runtime's bytes); [`ActorHandle`] is the typed Rust API over it
//! ([`Client::submit_actor`](crate::Client::submit_actor)).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxidask_core::Key;
use oxidask_protocol::transport::Security;
use oxidask_protocol::{
    handshake_connect, hello, read_frame, write_frame, ActorOutcome, DataRequest, DataResponse,
    Limits, Payload, Role, WireError, WireKey,
};
use tokio::io::{BufReader, BufWriter};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Why an actor call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ActorError {
    /// The worker holding the actor cannot be reached or went away before answering: the
    /// actor and its state are gone (actors are not recomputed).
    Lost(String),
    /// The call reached the worker and failed there (no such actor, a full queue, the
    /// method's own error).
    Failed(Box<WireError>),
}

impl std::fmt::Display for ActorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActorError::Lost(m) => f.write_str(m),
            ActorError::Failed(e) => f.write_str(&e.message),
        }
    }
}

impl std::error::Error for ActorError {}

type Outcome = Result<Bytes, ActorError>;

#[derive(Default)]
struct Slot {
    out: Mutex<Option<Outcome>>,
    cv: Condvar,
}

impl Slot {
    fn set(&self, o: Outcome) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(o);
        }
        self.cv.notify_all();
    }
}

/// A call on its way: its reply, once it arrives.
pub struct ActorCall {
    slot: Arc<Slot>,
}

impl ActorCall {
    /// True once the reply (or the failure) is here.
    pub fn is_done(&self) -> bool {
        self.slot
            .out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Waits for the reply at most `timeout` (`None`: for ever); `None` if it did not come
    /// in time (the call goes on).
    pub fn wait(&self, timeout: Option<Duration>) -> Option<Outcome> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.slot.out.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(o) = g.as_ref() {
                return Some(o.clone());
            }
            match deadline {
                None => g = self.slot.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    g = self
                        .slot
                        .cv
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

/// One connection to a worker's data port carrying actor calls.
struct Conn {
    tx: UnboundedSender<DataRequest>,
    /// Calls sent and not answered; `None` once the connection is gone.
    pending: Mutex<Option<HashMap<u64, Arc<Slot>>>>,
    next: AtomicU64,
}

impl Conn {
    fn close(&self, why: &str) {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for (_, slot) in pending.into_iter().flatten() {
            slot.set(Err(ActorError::Lost(why.to_owned())));
        }
    }
}

/// Connections to workers' data ports for actor calls (one per worker, opened on first use,
/// opened again after a failure). Held by a [`crate::Client`].
pub struct ActorCaller {
    security: Security,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
}

impl ActorCaller {
    /// A caller whose connections use `security`.
    pub fn new(security: Security) -> ActorCaller {
        ActorCaller {
            security,
            conns: Mutex::default(),
        }
    }

    /// Calls the method `name` (or reads the attribute, if `attribute`) of the actor `key` on
    /// the worker at data address `address`, with arguments encoded by the actor's runtime;
    /// returns at once. `rt` runs the connection.
    pub fn call(
        &self,
        rt: &tokio::runtime::Handle,
        address: &str,
        key: Key,
        name: &str,
        attribute: bool,
        args: Bytes,
    ) -> ActorCall {
        let slot = Arc::new(Slot::default());
        let wk = WireKey::from(&key);
        for _ in 0..2 {
            let conn = self.conn(rt, address, wk);
            let call = conn.next.fetch_add(1, Ordering::Relaxed);
            {
                let mut pending = conn.pending.lock().unwrap_or_else(|p| p.into_inner());
                let Some(p) = pending.as_mut() else {
                    // Closed meanwhile: forget it and open another.
                    drop(pending);
                    self.forget(address, &conn);
                    continue;
                };
                p.insert(call, slot.clone());
            }
            let sent = conn.tx.send(DataRequest::Actor {
                call,
                key: wk,
                name: name.to_owned(),
                attribute,
                args: Payload(args.clone()),
            });
            if sent.is_err() {
                conn.close(&lost_message(&wk, address, "its connection closed"));
            }
            return ActorCall { slot };
        }
        slot.set(Err(ActorError::Lost(lost_message(
            &wk,
            address,
            "its worker cannot be reached",
        ))));
        ActorCall { slot }
    }

    fn forget(&self, address: &str, conn: &Arc<Conn>) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.get(address).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            conns.remove(address);
        }
    }

    fn conn(&self, rt: &tokio::runtime::Handle, address: &str, key: WireKey) -> Arc<Conn> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conns.get(address) {
            if c.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                return c.clone();
            }
        }
        let (tx, mut rx) = unbounded_channel::<DataRequest>();
        let conn = Arc::new(Conn {
            tx,
            pending: Mutex::new(Some(HashMap::new())),
            next: AtomicU64::new(1),
        });
        conns.insert(address.to_owned(), conn.clone());
        drop(conns);
        let security = self.security.clone();
        let addr = address.to_owned();
        let c = conn.clone();
        rt.spawn(async move {
            let stream = async {
                let mut s = security.connect(&addr).await?;
                handshake_connect(&mut s, hello(Role::Peer)).await?;
                Ok::<_, oxidask_protocol::ProtocolError>(s)
            };
            let stream = match stream.await {
                Ok(s) => s,
                Err(e) => {
                    c.close(&lost_message(
                        &key,
                        &addr,
                        &format!("its worker cannot be reached ({e})"),
                    ));
                    return;
                }
            };
            let (rd, wr) = stream.into_split();
            let mut wr = BufWriter::new(wr);
            let writer_conn = c.clone();
            let writer_addr = addr.clone();
            let writer = tokio::spawn(async move {
                let mut batch = Vec::new();
                while let Some(r) = rx.recv().await {
                    batch.push(r);
                    while let Ok(r) = rx.try_recv() {
                        batch.push(r);
                    }
                    if let Err(e) = write_frame(&mut wr, &batch).await {
                        writer_conn.close(&lost_message(
                            &key,
                            &writer_addr,
                            &format!("sending to its worker failed ({e})"),
                        ));
                        return;
                    }
                    batch.clear();
                }
            });
            let mut rd = BufReader::new(rd);
            let why = loop {
                match read_frame::<_, DataResponse>(&mut rd, &Limits::default()).await {
                    Ok(Some(replies)) => {
                        for r in replies {
                            if let DataResponse::Actor { call, outcome } = r {
                                let slot = c
                                    .pending
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .as_mut()
                                    .and_then(|p| p.remove(&call));
                                if let Some(slot) = slot {
                                    slot.set(match outcome {
                                        ActorOutcome::Value(p) => Ok(p.0),
                                        ActorOutcome::Error(e) => {
                                            Err(ActorError::Failed(Box::new(e)))
                                        }
                                    });
                                }
                            }
                        }
                    }
                    Ok(None) => break "its worker closed the connection (it died or left)".into(),
                    Err(e) => break format!("the connection to its worker failed ({e})"),
                }
            };
            writer.abort();
            c.close(&lost_message(&key, &addr, &why));
        });
        conn
    }
}

fn lost_message(key: &WireKey, address: &str, why: &str) -> String {
    format!(
        "actor {key} on worker {address} was lost: {why}; actors are not recomputed (their state is gone), submit the actor again"
    )
}

impl crate::Client {
    /// Calls the method `name` (or reads the attribute `name`) of the actor `key` held by
    /// the worker at data address `address`, with arguments in the actor runtime's encoding;
    /// returns at once. The untyped layer under [`ActorHandle`] and Python's `Actor`.
    pub fn actor_call(
        &self,
        address: &str,
        key: Key,
        name: &str,
        attribute: bool,
        args: Bytes,
    ) -> ActorCall {
        self.inner
            .shared
            .actors
            .call(&self.inner.rt, address, key, name, attribute, args)
    }
}

impl crate::Client {
    /// Builds the Rust actor `A` (registered with `oxidask_worker::register_actor!`) on a
    /// worker from `init` and returns a handle to it once it exists. Calls through the handle
    /// go straight to that worker and run one at a time, in order; the actor lives until the
    /// last handle (and clone of it) is dropped.
    ///
    /// ```
    /// use oxidask_client::LocalCluster;
    /// use oxidask_worker::actor::Actor;
    ///
    /// struct Total(i64);
    ///
    /// impl Actor for Total {
    ///     const NAME: &'static str = "doc-total";
    ///     type Init = i64;
    ///     type Msg = i64;
    ///     type Reply = i64;
    ///     fn new(start: i64) -> Result<Self, String> {
    ///         Ok(Total(start))
    ///     }
    ///     fn handle(&mut self, add: i64) -> Result<i64, String> {
    ///         self.0 += add;
    ///         Ok(self.0)
    ///     }
    /// }
    /// oxidask_worker::register_actor!(Total);
    ///
    /// let cluster = LocalCluster::builder().workers(1).threads_per_worker(1).start().unwrap();
    /// let client = cluster.client().unwrap();
    /// let total = client.submit_actor::<Total>(10).unwrap();
    /// let calls: Vec<_> = (1..=3).map(|i| total.call(&i)).collect();
    /// let last = calls.into_iter().map(|c| c.result().unwrap()).last();
    /// assert_eq!(last, Some(16));
    /// ```
    pub fn submit_actor<A: oxidask_worker::actor::Actor>(
        &self,
        init: A::Init,
    ) -> Result<ActorHandle<A>, oxidask_core::Error> {
        let d = oxidask_worker::actor::actor_new(A::NAME.to_string(), oxidask_core::encode(&init));
        let future = self.submit_with(
            &d,
            oxidask_protocol::SubmitOptions {
                actor: true,
                ..Default::default()
            },
        )?;
        let r = future.result()?;
        Ok(ActorHandle {
            client: self.clone(),
            key: r.key.parse().map_err(|e| {
                oxidask_core::Error::Codec(oxidask_core::CodecError::Invalid {
                    what: "actor key",
                    detail: format!("{e}"),
                })
            })?,
            actor: r,
            _future: Some(future),
            _type: PhantomData,
        })
    }
}

/// A Rust actor on the cluster (see [`Client::submit_actor`](crate::Client::submit_actor)):
/// [`ActorHandle::call`] sends it a message.
pub struct ActorHandle<A: oxidask_worker::actor::Actor> {
    client: crate::Client,
    key: Key,
    actor: oxidask_worker::actor::ActorRef,
    _future: Option<crate::Future<oxidask_worker::actor::ActorRef>>,
    _type: PhantomData<fn() -> A>,
}

impl<A: oxidask_worker::actor::Actor> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle {
            client: self.client.clone(),
            key: self.key,
            actor: self.actor.clone(),
            _future: self._future.clone(),
            _type: PhantomData,
        }
    }
}

impl<A: oxidask_worker::actor::Actor> ActorHandle<A> {
    /// A handle on the actor `actor` (an [`ActorRef`](oxidask_worker::actor::ActorRef)
    /// passed to a task, for instance) calling through `client` (in a task:
    /// [`get_client`](crate::get_client)). It does not keep the actor alive.
    pub fn attach(
        client: &crate::Client,
        actor: oxidask_worker::actor::ActorRef,
    ) -> Result<ActorHandle<A>, String> {
        if actor.type_name != A::NAME {
            return Err(format!(
                "actor {} is a {}, not a {}",
                actor.key,
                actor.type_name,
                A::NAME
            ));
        }
        let key = actor
            .key
            .parse()
            .map_err(|e| format!("{:?} is not an actor's key: {e}", actor.key))?;
        Ok(ActorHandle {
            client: client.clone(),
            key,
            actor,
            _future: None,
            _type: PhantomData,
        })
    }

    /// Which actor, and where: pass it to tasks, which [`attach`](ActorHandle::attach) to it.
    pub fn actor_ref(&self) -> &oxidask_worker::actor::ActorRef {
        &self.actor
    }

    /// Sends `msg`; returns at once. Messages from one handle run in the order sent.
    pub fn call(&self, msg: &A::Msg) -> ActorReply<A::Reply> {
        let args = Bytes::from(oxidask_core::encode(msg));
        ActorReply {
            call: self
                .client
                .actor_call(&self.actor.address, self.key, "handle", false, args),
            _type: PhantomData,
        }
    }
}

/// The pending reply to [`ActorHandle::call`].
pub struct ActorReply<R> {
    call: ActorCall,
    _type: PhantomData<fn() -> R>,
}

impl<R: oxidask_core::Data> ActorReply<R> {
    /// True once answered.
    pub fn is_done(&self) -> bool {
        self.call.is_done()
    }

    /// Waits for the reply.
    pub fn result(&self) -> Result<R, ActorError> {
        self.result_timeout(None)
            .expect("waiting without a timeout returns a reply")
    }

    /// Waits at most `timeout` (`None`: for ever); `None` if the reply did not come in time.
    pub fn result_timeout(&self, timeout: Option<Duration>) -> Option<Result<R, ActorError>> {
        let out = self.call.wait(timeout)?;
        Some(out.and_then(|b| {
            oxidask_core::decode(&b).map_err(|e| {
                ActorError::Failed(Box::new(WireError::invalid(format!(
                    "the actor's reply cannot be decoded: {e}"
                ))))
            })
        }))
    }
}
