//! Moving data between workers: the data port that serves held results to peers (and to
//! clients gathering), and fetching dependencies directly from the peers that hold them.

use std::collections::HashMap;
use std::sync::Arc;

use oxidask_core::Key;
use oxidask_protocol::frame::read_frame_admitting;
use oxidask_protocol::transport::{accept_next, PeerLimit, Security, Stream};
use oxidask_protocol::wire::PrefixAdmission;
use oxidask_protocol::{
    handshake_accept, hello, write_frame, DataRequest, DataResponse, Fetched, Limits,
    ProtocolError, Role, WireKey, WireValue,
};
use tokio::io::{BufReader, BufWriter};
use tokio::net::TcpListener;

use crate::state::{Event, FetchOrder};
use crate::Shared;

/// How long a peer has to say hello after the transport handshake.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `DataRequest`s on the worker's data port until the worker stops.
pub(crate) async fn serve_data(listener: TcpListener, security: Security, shared: Arc<Shared>) {
    let limit = PeerLimit::configured();
    loop {
        let (tcp, peer, permit) =
            accept_next(&listener, &limit, |m| shared.log(format!("data port: {m}"))).await;
        let shared = shared.clone();
        let security = security.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // TLS and the token are checked before any message is read.
            let stream = match security.accept(tcp, peer).await {
                Ok(s) => s,
                Err(e) => {
                    shared.log_at(
                        tracing::Level::WARN,
                        format!("data port: refused connection from {e}"),
                    );
                    return;
                }
            };
            if let Err(e) = serve_peer(stream, &shared).await {
                if !matches!(e, ProtocolError::Closed) {
                    shared.log(format!("data connection: {e}"));
                }
            }
        });
    }
}

async fn serve_peer(mut stream: Stream, shared: &Arc<Shared>) -> Result<(), ProtocolError> {
    tokio::time::timeout(
        HELLO_TIMEOUT,
        handshake_accept(&mut stream, &hello(Role::Peer), 0),
    )
    .await
    .map_err(|_| ProtocolError::Unexpected(format!("no hello within {HELLO_TIMEOUT:?}")))??;
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut wr = BufWriter::with_capacity(1 << 16, wr);
    // Payloads come only with actor calls (their arguments).
    let limits = Limits {
        max_header: 64 << 20,
        max_parts: 1 << 16,
        max_payload: 2 << 30,
    };
    // Replies go through a writer task: values are answered in request order, actor calls
    // when their actor has run them (from the actor's thread), so a slow actor call never
    // holds up the connection. One request frame's values travel in one reply frame.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<DataResponse>>();
    let writer_log = shared.data_address.clone();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while let Some(r) = rx.recv().await {
            batch.extend(r);
            while let Ok(r) = rx.try_recv() {
                batch.extend(r);
            }
            if let Err(e) = write_frame(&mut wr, &batch).await {
                if !matches!(e, ProtocolError::Closed) {
                    tracing::debug!("{writer_log}: data connection: {e}");
                }
                return;
            }
            batch.clear();
        }
    });
    // A key whose prefix this worker never interned is not one it holds: a peer may not add
    // prefixes here (anyone can reach a data port; see `PrefixAdmission`).
    let mut admission = PrefixAdmission::known_only();
    while let Some(reqs) =
        read_frame_admitting::<_, DataRequest>(&mut rd, &limits, &mut admission).await?
    {
        let mut replies = Vec::with_capacity(reqs.len());
        for req in reqs {
            match req {
                DataRequest::Get { keys } => replies.push(values_of(shared, keys).await),
                DataRequest::ShuffleTake {
                    shuffle,
                    output,
                    inputs,
                    stamps,
                } => replies.push(crate::shuffle::serve_take(
                    shared, shuffle, output, inputs, stamps,
                )),
                DataRequest::Actor {
                    call,
                    key,
                    name,
                    attribute,
                    args,
                } => {
                    let tx = tx.clone();
                    shared.actors.submit(
                        &shared.data_address,
                        key,
                        crate::actor::Job {
                            name,
                            attribute,
                            args: args.0,
                            reply: Box::new(move |outcome| {
                                let _ = tx.send(vec![DataResponse::Actor { call, outcome }]);
                            }),
                        },
                    );
                }
            }
        }
        if !replies.is_empty() && tx.send(replies).is_err() {
            break;
        }
    }
    Ok(())
}

/// What this worker has for `keys`, encoded for the wire. Spilled values are read from their
/// files without the worker's lock, on the blocking pool (the I/O runtime's thread keeps
/// serving), and stay on disk.
async fn values_of(shared: &Arc<Shared>, keys: Vec<WireKey>) -> DataResponse {
    use crate::state::Served;
    let served: Vec<(WireKey, Served)> = {
        let mut st = shared.lock();
        keys.into_iter()
            .map(|wk| {
                let s = match wk.to_key() {
                    Ok(k) => st.serve(&k),
                    Err(_) => Served::Missing,
                };
                (wk, s)
            })
            .collect()
    };
    let mut values = Vec::with_capacity(served.len());
    for (wk, s) in served {
        let v = match s {
            Served::Value(v) => Some(v),
            Served::Missing => None,
            Served::File { path, type_name } => {
                let shared = shared.clone();
                tokio::task::spawn_blocking(move || read_served(&shared, &wk, &path, &type_name))
                    .await
                    .ok()
                    .flatten()
            }
        };
        let fetched = match v.map(|v| WireValue::from_value(&v)) {
            Some(Ok(wv)) => Fetched::Value(wv),
            Some(Err(e)) => {
                shared.log(format!("cannot send {wk}: {e}"));
                Fetched::Unsendable(e.message)
            }
            None => Fetched::Missing,
        };
        values.push((wk, fetched));
    }
    DataResponse::Values { values }
}

/// A spilled value a peer asked for, read from its file; if the file went meanwhile (read
/// back by a task, or the value freed), whatever the worker holds now.
fn read_served(
    shared: &Shared,
    wk: &WireKey,
    path: &std::path::Path,
    type_name: &str,
) -> Option<oxidask_core::Value> {
    let started = crate::state::now_us();
    match crate::state::read_spill(path, type_name) {
        Ok(v) => {
            let nbytes = v.nbytes() as u64;
            shared.lock().record(
                oxidask_protocol::ActivityKind::SpillIn,
                started,
                crate::state::now_us(),
                nbytes,
                1,
            );
            Some(v)
        }
        Err(e) => {
            let again = wk.to_key().ok().map(|k| shared.lock().serve(&k));
            match again {
                Some(crate::state::Served::Value(v)) => Some(v),
                Some(crate::state::Served::File { path: p, .. }) if p == path => {
                    shared.log(format!(
                        "the spilled value of {wk} could not be read back: {e}"
                    ));
                    None
                }
                Some(crate::state::Served::File { path, type_name }) => {
                    crate::state::read_spill(&path, &type_name).ok()
                }
                _ => None,
            }
        }
    }
}

/// Fetches dependencies, one request per holder for the keys it is first choice for, then
/// each leftover key from its other holders; a key no holder has is reported missing.
pub(crate) async fn fetch(shared: Arc<Shared>, orders: Vec<FetchOrder>) {
    // A paused worker (memory) fetches nothing until it resumes.
    loop {
        let resumed = shared.resumed.notified();
        if !shared.lock().paused {
            break;
        }
        resumed.await;
    }
    let mut by_addr: HashMap<String, Vec<FetchOrder>> = HashMap::new();
    let mut nowhere = Vec::new();
    for o in orders {
        match o.2.first() {
            Some(a) => by_addr.entry(a.clone()).or_default().push(o),
            None => nowhere.push(o),
        }
    }
    for (key, wire_key, _) in nowhere {
        shared.apply(Event::FetchFailed {
            key,
            wire_key,
            tried: Vec::new(),
        });
    }
    let mut tasks = Vec::new();
    for (addr, group) in by_addr {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            fetch_group(shared, addr, group).await
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    shared.cv.notify_all();
    shared.wake_writer();
}

/// What to do with one key a holder answered.
enum Outcome {
    Got(oxidask_core::Value),
    /// Not there: try the other holders.
    TryElsewhere,
    /// There, but it cannot travel or cannot be read here: the tasks that need it fail.
    Fail(String),
}

fn outcome(wk: &WireKey, f: Option<Fetched>) -> Outcome {
    match f {
        Some(Fetched::Value(v)) => match v.to_value() {
            Ok(v) => Outcome::Got(v),
            Err(e) => Outcome::Fail(format!(
                "the value of {wk} arrived but cannot be read here: {}",
                e.message
            )),
        },
        Some(Fetched::Unsendable(why)) => Outcome::Fail(format!(
            "the value of {wk} cannot be sent from its worker: {why}"
        )),
        Some(Fetched::Missing) | None => Outcome::TryElsewhere,
    }
}

async fn fetch_group(shared: Arc<Shared>, addr: String, group: Vec<FetchOrder>) {
    let keys: Vec<WireKey> = group.iter().map(|(_, wk, _)| *wk).collect();
    let started = crate::state::now_us();
    let got = shared.pool.get(&addr, keys).await.unwrap_or_default();
    let bytes: u64 = got
        .iter()
        .map(|(_, f)| match f {
            Fetched::Value(v) => v.len() as u64,
            _ => 0,
        })
        .sum();
    if !got.is_empty() {
        shared.lock().record(
            oxidask_protocol::ActivityKind::Transfer,
            started,
            crate::state::now_us(),
            bytes,
            got.len() as u32,
        );
    }
    let mut got: HashMap<WireKey, Fetched> = got.into_iter().collect();
    let mut leftovers = Vec::new();
    for (k, wk, addrs) in group {
        match outcome(&wk, got.remove(&wk)) {
            Outcome::Got(value) => {
                shared.apply(Event::Fetched { key: k, value });
            }
            Outcome::Fail(why) => {
                shared.apply(Event::FetchUnusable {
                    key: k,
                    wire_key: wk,
                    why,
                });
            }
            Outcome::TryElsewhere => leftovers.push((k, wk, addrs)),
        }
    }
    if !leftovers.is_empty() {
        shared.cv.notify_all();
    }
    for (k, wk, addrs) in leftovers {
        fetch_one(&shared, k, wk, addrs).await;
    }
}

async fn fetch_one(shared: &Arc<Shared>, k: Key, wk: WireKey, addrs: Vec<String>) {
    let mut tried = vec![addrs[0].clone()];
    for addr in addrs.iter().skip(1) {
        tried.push(addr.clone());
        if let Ok(got) = shared.pool.get(addr, vec![wk]).await {
            match outcome(&wk, got.into_iter().next().map(|(_, f)| f)) {
                Outcome::Got(value) => {
                    shared.apply(Event::Fetched { key: k, value });
                    return;
                }
                Outcome::Fail(why) => {
                    shared.apply(Event::FetchUnusable {
                        key: k,
                        wire_key: wk,
                        why,
                    });
                    return;
                }
                Outcome::TryElsewhere => {}
            }
        }
    }
    shared.apply(Event::FetchFailed {
        key: k,
        wire_key: wk,
        tried,
    });
}

/// Fetches results the scheduler asked this worker to hold (a copy for a retiring worker,
/// `replicate`, `rebalance`), from the first holder that has each, and reports what arrived.
pub(crate) async fn acquire(shared: Arc<Shared>, who_has: Vec<(WireKey, Vec<String>)>) {
    let mut by_addr: HashMap<String, Vec<(WireKey, Vec<String>)>> = HashMap::new();
    let mut missing = Vec::new();
    for (wk, addrs) in who_has {
        match addrs.first() {
            Some(a) => by_addr.entry(a.clone()).or_default().push((wk, addrs)),
            None => missing.push(wk),
        }
    }
    let mut got = Vec::new();
    for (addr, group) in by_addr {
        let started = crate::state::now_us();
        let keys: Vec<WireKey> = group.iter().map(|(k, _)| *k).collect();
        let mut answers: HashMap<WireKey, Fetched> = shared
            .pool
            .get(&addr, keys)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (wk, addrs) in group {
            let mut value = match answers.remove(&wk) {
                Some(Fetched::Value(v)) => v.to_value().ok(),
                _ => None,
            };
            for other in addrs.iter().skip(1) {
                if value.is_some() {
                    break;
                }
                if let Ok(a) = shared.pool.get(other, vec![wk]).await {
                    if let Some((_, Fetched::Value(v))) = a.into_iter().next() {
                        value = v.to_value().ok();
                    }
                }
            }
            match (value, wk.to_key()) {
                (Some(value), Ok(key)) => {
                    let nbytes = value.nbytes() as u64;
                    let type_name = value.type_name().to_owned();
                    shared.lock().record(
                        oxidask_protocol::ActivityKind::Transfer,
                        started,
                        crate::state::now_us(),
                        nbytes,
                        1,
                    );
                    shared.apply(Event::Acquired { key, value });
                    got.push((wk, type_name, nbytes));
                }
                _ => missing.push(wk),
            }
        }
    }
    if !missing.is_empty() {
        shared.log(format!(
            "could not fetch {} result(s) the scheduler asked this worker to hold",
            missing.len()
        ));
    }
    shared
        .lock()
        .outbox
        .push(oxidask_protocol::FromWorker::Acquired { keys: got, missing });
    shared.wake_writer();
}
