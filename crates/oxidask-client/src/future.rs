//! `Future<T>`: a result being computed, or held, on the cluster.

use std::marker::PhantomData;
use std::time::Duration;

use oxidask_core::delayed::{ArgSource, ExternalResult, IntoArg};
use oxidask_core::{Collection, Data, Error, Graph, Key, Value};
use oxidask_protocol::WireValue;

use crate::client::{Client, KeyStatus, ReturnWhen};
use crate::error::{from_wire, scheduler_error, ClientError};

/// Where a future stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not finished.
    Pending,
    /// Computed; the result is on a worker.
    Finished,
    /// Failed (or a dependency failed).
    Error,
    /// Cancelled.
    Cancelled,
}

/// A result of type `T` on the cluster (Dask's `Future`).
///
/// Handles are reference counted: clones share the key, and when the last handle (of this
/// client) drops, the scheduler is told the result is no longer needed. A future can be
/// passed as an argument to further tasks (`inc(&future)`), which then run where the data is.
pub struct Future<T> {
    client: Client,
    key: Key,
    _type: PhantomData<fn() -> T>,
}

impl<T> Future<T> {
    /// Wraps a key the client already holds a reference on.
    pub(crate) fn adopt(client: Client, key: Key) -> Future<T> {
        Future {
            client,
            key,
            _type: PhantomData,
        }
    }

    /// The key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where it stands now.
    pub fn status(&self) -> Status {
        let st = self.client.shared().lock();
        match st.keys.get(&self.key).map(|e| &e.status) {
            Some(KeyStatus::Pending) => Status::Pending,
            Some(KeyStatus::Finished) => Status::Finished,
            Some(KeyStatus::Erred(_)) => Status::Error,
            Some(KeyStatus::Cancelled) | None => Status::Cancelled,
        }
    }

    /// True once finished, failed or cancelled.
    pub fn done(&self) -> bool {
        self.status() != Status::Pending
    }

    /// Waits until done (without fetching the result).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Status, Error> {
        self.client
            .wait_keys(&[self.key], timeout, ReturnWhen::AllCompleted)?;
        Ok(self.status())
    }

    /// The error, if it failed.
    pub fn exception(&self) -> Option<Error> {
        let st = self.client.shared().lock();
        match st.keys.get(&self.key).map(|e| &e.status) {
            Some(KeyStatus::Erred(e)) => Some(from_wire(self.key, e)),
            Some(KeyStatus::Cancelled) => Some(scheduler_error(ClientError::Cancelled(self.key))),
            _ => None,
        }
    }

    /// Stops computing it.
    pub fn cancel(&self) -> Result<(), Error> {
        self.client.cancel(std::slice::from_ref(self))
    }

    /// Waits for the result and fetches it as a type-erased value (decoded by type name):
    /// for front ends that do not know the type statically.
    pub fn value(&self, timeout: Option<Duration>) -> Result<Value, Error> {
        Ok(self
            .client
            .gather_keys(&[self.key], timeout)?
            .pop()
            .expect("one value per key"))
    }

    /// Runs `callback` once this future is done (see [`Client::on_done`]).
    pub fn add_done_callback(&self, callback: crate::client::DoneCallback) {
        self.client.on_done(self.key, callback)
    }

    /// The same future with its type forgotten (for waiting on mixed kinds together).
    pub fn erase(&self) -> Future<()> {
        self.client.hold(self.key);
        Future::adopt(self.client.clone(), self.key)
    }
}

impl<T: Data> Future<T> {
    /// Waits for the result and fetches it from the worker holding it.
    pub fn result(&self) -> Result<T, Error> {
        self.result_timeout(None)
    }

    /// [`Future::result`] giving up after `timeout`.
    pub fn result_timeout(&self, timeout: Option<Duration>) -> Result<T, Error> {
        let w = self.client.fetch_wire(&[self.key], timeout)?;
        decode_typed(self.key, &w[0])
    }

    /// Waits for the result without blocking an async runtime's thread.
    pub async fn result_async(&self) -> Result<T, Error> {
        loop {
            let notified = self.client.shared().notify.notified();
            if self.done() || self.client.shared().lock().lost.is_some() {
                break;
            }
            notified.await;
        }
        let client = self.client.clone();
        let key = self.key;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let r = client
                .fetch_wire(&[key], None)
                .and_then(|w| decode_typed::<T>(key, &w[0]));
            let _ = tx.send(r);
        });
        rx.await.unwrap_or_else(|_| {
            Err(scheduler_error(ClientError::Lost(
                "fetch thread ended".into(),
            )))
        })
    }
}

/// Decodes a fetched value as `T`, checking its type.
pub(crate) fn decode_typed<T: Data>(key: Key, w: &WireValue) -> Result<T, Error> {
    let expected = std::any::type_name::<T>();
    if w.type_name != expected {
        return Err(scheduler_error(ClientError::WrongType {
            key,
            expected,
            found: w.type_name.clone(),
        }));
    }
    oxidask_core::decode::<T>(&w.bytes.0).map_err(Error::Codec)
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        self.client.hold(self.key);
        Future::adopt(self.client.clone(), self.key)
    }
}

impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        self.client.unhold(self.key);
    }
}

impl<T> std::fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Future<{}>({}, {:?})",
            std::any::type_name::<T>(),
            self.key,
            self.status()
        )
    }
}

impl<T> IntoArg<T> for &Future<T> {
    fn into_arg(self) -> ArgSource {
        ArgSource::external(self.key)
    }
}

impl<T> ExternalResult for Future<T> {
    type Output = T;

    fn external_key(&self) -> Key {
        self.key
    }
}

/// A future is a collection whose graph is already computed on the cluster: `compute()`
/// fetches it (on the distributed scheduler).
impl<T: Data + Clone> Collection for Future<T> {
    type Output = T;
    type Persisted = Future<T>;

    fn keys(&self) -> Vec<Key> {
        vec![self.key]
    }

    fn build_graph(&self, _graph: &mut Graph) {}

    fn finalize(&self, values: Vec<Value>) -> Result<T, Error> {
        let v = values.into_iter().next().ok_or(Error::OutputType {
            key: self.key,
            expected: std::any::type_name::<T>(),
            found: "nothing",
        })?;
        let found = v.type_name();
        v.take::<T>().map_err(|_| Error::OutputType {
            key: self.key,
            expected: std::any::type_name::<T>(),
            found,
        })
    }

    fn rebuild(&self, _values: Vec<Value>) -> Future<T> {
        self.clone()
    }
}

/// Futures in the order they finish (Dask's `as_completed`).
pub struct AsCompleted<T> {
    pending: Vec<Future<T>>,
    timeout: Option<Duration>,
}

/// Yields each future as soon as it is done, whatever the submission order.
pub fn as_completed<T>(futures: Vec<Future<T>>) -> AsCompleted<T> {
    AsCompleted {
        pending: futures,
        timeout: None,
    }
}

impl<T> AsCompleted<T> {
    /// Gives up (ending the iteration with an error) when nothing finishes for `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a future to wait for.
    pub fn add(&mut self, f: Future<T>) {
        self.pending.push(f);
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Result<Future<T>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pending.is_empty() {
            return None;
        }
        if let Some(i) = self.pending.iter().position(|f| f.done()) {
            return Some(Ok(self.pending.swap_remove(i)));
        }
        let client = self.pending[0].client.clone();
        match client.wait(&self.pending, self.timeout, ReturnWhen::FirstCompleted) {
            Ok(r) => {
                let i = r.done[0];
                Some(Ok(self.pending.swap_remove(i)))
            }
            Err(e) => {
                self.pending.clear();
                Some(Err(e))
            }
        }
    }
}
