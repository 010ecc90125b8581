//! Where files live: local paths and `s3://` URLs (through `object_store`), listing with globs
//! and directories, and reading whole objects or byte ranges.
//!
//! S3 requests run on one small Tokio runtime of this crate's own and callers wait for them
//! on a plain channel ([`block_on`]), so the synchronous API works from any thread — also
//! from inside another Tokio runtime, where `Runtime::block_on` would panic. Credentials are
//! resolved here, in the process that touches the bucket (see [`crate::credentials`]).

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, OnceLock};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::credentials::{Credentials, Keys, Redactor};
use crate::error::FrameError;

/// Options for object storage (`s3://` paths), as Dask's `storage_options`.
///
/// They hold no secret: [`StorageOptions::credentials`] says where the process that reads
/// finds the keys (its `AWS_*` environment by default, or a named secret), so the options
/// can travel in task specs to workers. Unset fields fall back to the reading process's
/// `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, …).
///
/// ```no_run
/// use oxidask_core::Collection;
/// use oxidask_dataframe::{self as dd, Credentials, ParquetOptions, StorageOptions};
/// # use oxidask_local as _;
///
/// // Keys from OXIDASK_SECRET_ANALYTICS_ACCESS_KEY_ID and
/// // OXIDASK_SECRET_ANALYTICS_SECRET_ACCESS_KEY on the client and on every worker.
/// let storage = StorageOptions::endpoint("http://minio.internal:9000")
///     .region("eu-west-1")
///     .credentials(Credentials::named("analytics"));
/// let trips = dd::read_parquet_with(
///     "s3://trips/2026/",
///     ParquetOptions { storage, ..Default::default() },
/// );
/// println!("{}", trips.compute()?);
/// # Ok::<(), oxidask_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StorageOptions {
    /// Endpoint URL, e.g. `http://127.0.0.1:5000` for a local S3 server (else
    /// `AWS_ENDPOINT_URL`, else AWS). `http://` endpoints are allowed.
    pub endpoint: Option<String>,
    /// Region (else `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Where the keys come from: a reference resolved by the process that reads.
    pub credentials: Credentials,
}

impl StorageOptions {
    /// Options for an S3-compatible endpoint, keys from the environment of the process that
    /// reads ([`Credentials::Environment`]).
    pub fn endpoint(url: impl Into<String>) -> Self {
        StorageOptions {
            endpoint: Some(url.into()),
            ..Default::default()
        }
    }

    /// Sets the region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets where the keys come from.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// What identifies these options in a graph token: endpoint, region and the kind of
    /// credentials, never a key.
    pub(crate) fn describe(&self) -> String {
        format!(
            "endpoint={:?} region={:?} credentials={}",
            self.endpoint,
            self.region,
            self.credentials.describe()
        )
    }
}

/// A file to read: a local path or an object in a bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Location {
    Local(String),
    S3 { bucket: String, key: String },
}

impl Location {
    pub(crate) fn parse(s: &str) -> Result<Location, FrameError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(FrameError::Invalid(format!("`{s}` names no bucket")));
            }
            Ok(Location::S3 {
                bucket: bucket.to_owned(),
                key: key.trim_start_matches('/').to_owned(),
            })
        } else if s.contains("://") {
            Err(FrameError::Invalid(format!(
                "`{s}`: only local paths and s3:// URLs are supported"
            )))
        } else {
            Ok(Location::Local(s.to_owned()))
        }
    }

    /// The path as the user writes it.
    pub(crate) fn display(&self) -> String {
        match self {
            Location::Local(p) => p.clone(),
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// The file name's extension, lower case.
    pub(crate) fn extension(&self) -> String {
        let name = match self {
            Location::Local(p) => p.as_str(),
            Location::S3 { key, .. } => key.as_str(),
        };
        name.rsplit('/')
            .next()
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("oxidask-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
}

/// Runs `fut` on the I/O runtime and waits for it on this thread.
///
/// Not `Runtime::block_on`: the caller may be inside a Tokio runtime of its own (a
/// `#[tokio::main]` program calling `compute()`), where that panics with "Cannot start a
/// runtime from within a runtime". The future runs on the I/O runtime's thread and this
/// thread waits on a standard channel, which is allowed anywhere.
fn block_on<T, F>(what: &str, fut: F) -> Result<T, FrameError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, FrameError>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().unwrap_or_else(|_| {
        Err(FrameError::io(
            what,
            "the request panicked on oxidask's I/O thread; this is a bug, please report it with the panic message printed above",
        ))
    })
}

/// What an S3 client is built from, resolved in this process (keys included: never leaves
/// it; `Debug` of [`Keys`] prints `***`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct StoreKey {
    bucket: String,
    endpoint: Option<String>,
    region: Option<String>,
    keys: Option<Keys>,
}

/// A bucket's client and the keys to scrub from its errors.
#[derive(Clone)]
struct Bucket {
    store: Arc<dyn ObjectStore>,
    redact: Arc<Redactor>,
}

impl Bucket {
    /// An I/O error on `path`, without the keys in use.
    fn err(&self, path: impl Into<String>, e: impl std::fmt::Display) -> FrameError {
        FrameError::io(path, self.redact.scrub(e))
    }
}

fn bucket(bucket: &str, opts: &StorageOptions) -> Result<Bucket, FrameError> {
    static STORES: OnceLock<Mutex<HashMap<StoreKey, Bucket>>> = OnceLock::new();
    let keys = opts.credentials.resolve(|name| std::env::var(name).ok())?;
    let key = StoreKey {
        bucket: bucket.to_owned(),
        endpoint: opts.endpoint.clone(),
        region: opts.region.clone(),
        keys,
    };
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = stores.get(&key) {
        return Ok(s.clone());
    }
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let b = build_store(&key, env)?;
    stores.insert(key, b.clone());
    Ok(b)
}

/// The client for `key`, with the `AWS_*` variables of `env` as defaults (their keys only
/// when `key` resolved none).
fn build_store(
    key: &StoreKey,
    env: impl Iterator<Item = (String, String)>,
) -> Result<Bucket, FrameError> {
    let mut b = AmazonS3Builder::new();
    for (name, value) in env {
        if !name.starts_with("AWS_") {
            continue;
        }
        let Ok(config) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() else {
            continue;
        };
        let is_key = matches!(
            config,
            AmazonS3ConfigKey::AccessKeyId
                | AmazonS3ConfigKey::SecretAccessKey
                | AmazonS3ConfigKey::Token
        );
        // Keys from a named secret or code replace the environment's, token included: a
        // session token of other keys would make every request fail to sign.
        if !(is_key && key.keys.is_some()) {
            b = b.with_config(config, value);
        }
    }
    b = b.with_bucket_name(&key.bucket);
    if let Some(e) = &key.endpoint {
        b = b.with_endpoint(e.clone());
    }
    if let Some(r) = &key.region {
        b = b.with_region(r.clone());
    }
    if let Some(k) = &key.keys {
        b = b
            .with_access_key_id(k.access_key_id.clone())
            .with_secret_access_key(k.secret_access_key.clone());
        if let Some(t) = &k.session_token {
            b = b.with_token(t.clone());
        }
    }
    // A local server's `http://` endpoint, given here or in `AWS_ENDPOINT_URL`, is meant.
    if b.get_config_value(&AmazonS3ConfigKey::Endpoint)
        .is_some_and(|e| e.starts_with("http://"))
    {
        b = b.with_allow_http(true);
    }
    let redact = Arc::new(Redactor::new(
        [
            AmazonS3ConfigKey::AccessKeyId,
            AmazonS3ConfigKey::SecretAccessKey,
            AmazonS3ConfigKey::Token,
        ]
        .iter()
        .filter_map(|k| b.get_config_value(k)),
    ));
    let store = b
        .build()
        .map_err(|e| FrameError::io(format!("s3://{}", key.bucket), redact.scrub(e)))?;
    Ok(Bucket {
        store: Arc::new(store),
        redact,
    })
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands paths (files, directories, globs, `s3://` prefixes) into the files they name,
/// sorted, keeping only names with one of `extensions` when a directory is listed.
pub(crate) fn expand(
    paths: &[String],
    extensions: &[&str],
    opts: &StorageOptions,
) -> Result<Vec<Location>, FrameError> {
    let mut out = Vec::new();
    for p in paths {
        let before = out.len();
        match Location::parse(p)? {
            Location::Local(path) => expand_local(&path, extensions, &mut out)?,
            Location::S3 { bucket, key } => expand_s3(&bucket, &key, extensions, opts, &mut out)?,
        }
        if out.len() == before {
            return Err(FrameError::NoFiles(p.clone()));
        }
    }
    Ok(out)
}

fn wanted(name: &str, extensions: &[&str]) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.starts_with('.') || base.starts_with('_') {
        return false; // _SUCCESS, _metadata, hidden files
    }
    extensions.is_empty()
        || extensions
            .iter()
            .any(|e| base.to_ascii_lowercase().ends_with(&format!(".{e}")))
}

fn expand_local(
    path: &str,
    extensions: &[&str],
    out: &mut Vec<Location>,
) -> Result<(), FrameError> {
    if has_glob(path) {
        let mut found: Vec<String> = glob::glob(path)
            .map_err(|e| FrameError::Invalid(format!("bad pattern `{path}`: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        found.sort();
        out.extend(found.into_iter().map(Location::Local));
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|e| FrameError::io(path, e))?;
    if meta.is_file() {
        out.push(Location::Local(path.to_owned()));
        return Ok(());
    }
    let mut found = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(path)];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).map_err(|e| FrameError::io(dir.display().to_string(), e))?
        {
            let entry = entry.map_err(|e| FrameError::io(dir.display().to_string(), e))?;
            let p = entry.path();
            let name = p.to_string_lossy().into_owned();
            if p.is_dir() {
                let base = entry.file_name().to_string_lossy().into_owned();
                if !base.starts_with('.') && !base.starts_with('_') {
                    stack.push(p);
                }
            } else if wanted(&name, extensions) {
                found.push(name);
            }
        }
    }
    found.sort();
    out.extend(found.into_iter().map(Location::Local));
    Ok(())
}

fn expand_s3(
    bucket_name: &str,
    key: &str,
    extensions: &[&str],
    opts: &StorageOptions,
    out: &mut Vec<Location>,
) -> Result<(), FrameError> {
    let b = bucket(bucket_name, opts)?;
    let shown = format!("s3://{bucket_name}/{key}");
    let glob_at = key.find(['*', '?', '[']);
    // A single object named exactly.
    if glob_at.is_none() && !key.is_empty() && !key.ends_with('/') {
        let (store, path) = (b.store.clone(), ObjectPath::from(key));
        let exact = block_on(&shown, async move { Ok(store.head(&path).await.is_ok()) })?;
        if exact {
            out.push(Location::S3 {
                bucket: bucket_name.to_owned(),
                key: key.to_owned(),
            });
            return Ok(());
        }
    }
    let prefix = match glob_at {
        Some(i) => key[..i].rsplit_once('/').map_or("", |(d, _)| d),
        None => key.trim_end_matches('/'),
    };
    let pattern = match glob_at {
        Some(_) => Some(
            glob::Pattern::new(key)
                .map_err(|e| FrameError::Invalid(format!("bad pattern `{shown}`: {e}")))?,
        ),
        None => None,
    };
    let listed: Vec<String> = {
        let (b, shown, p) = (b.clone(), shown.clone(), ObjectPath::from(prefix));
        let everything = prefix.is_empty();
        block_on(&shown.clone(), async move {
            use futures::TryStreamExt;
            let metas: Vec<object_store::ObjectMeta> = b
                .store
                .list(if everything { None } else { Some(&p) })
                .try_collect()
                .await
                .map_err(|e| b.err(&shown, e))?;
            Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
        })?
    };
    let literal_separator = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    // Below the listed prefix, skip hidden and underscore directories and files (temporary
    // output, `_SUCCESS`, `_metadata`), as local listing does.
    let visible = |k: &str| {
        k.strip_prefix(prefix)
            .unwrap_or(k)
            .split('/')
            .filter(|seg| !seg.is_empty())
            .all(|seg| !seg.starts_with(['.', '_']))
    };
    let mut found: Vec<String> = listed
        .into_iter()
        .filter(|k| visible(k))
        .filter(|k| match &pattern {
            Some(p) => p.matches_with(k, literal_separator),
            // Everything under the prefix, as a directory.
            None => {
                (k.starts_with(&format!("{prefix}/")) || prefix.is_empty()) && wanted(k, extensions)
            }
        })
        .collect();
    found.sort();
    out.extend(found.into_iter().map(|key| Location::S3 {
        bucket: bucket_name.to_owned(),
        key,
    }));
    Ok(())
}

/// The bucket client, object path and shown URL of an S3 location.
fn s3(
    loc: &Location,
    name: &str,
    key: &str,
    opts: &StorageOptions,
) -> Result<(Bucket, ObjectPath, String), FrameError> {
    Ok((bucket(name, opts)?, ObjectPath::from(key), loc.display()))
}

/// The whole file.
pub(crate) fn read_all(loc: &Location, opts: &StorageOptions) -> Result<Vec<u8>, FrameError> {
    match loc {
        Location::Local(p) => std::fs::read(p).map_err(|e| FrameError::io(p, e)),
        Location::S3 { bucket, key } => {
            let (b, path, shown) = s3(loc, bucket, key, opts)?;
            block_on(&shown.clone(), async move {
                let r = b.store.get(&path).await.map_err(|e| b.err(&shown, e))?;
                let bytes = r.bytes().await.map_err(|e| b.err(&shown, e))?;
                Ok(bytes.to_vec())
            })
        }
    }
}

/// The file's size in bytes.
pub(crate) fn size(loc: &Location, opts: &StorageOptions) -> Result<u64, FrameError> {
    match loc {
        Location::Local(p) => std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| FrameError::io(p, e)),
        Location::S3 { bucket, key } => {
            let (b, path, shown) = s3(loc, bucket, key, opts)?;
            block_on(&shown.clone(), async move {
                b.store
                    .head(&path)
                    .await
                    .map(|m| m.size)
                    .map_err(|e| b.err(&shown, e))
            })
        }
    }
}

/// Bytes `start..end` of the file (fewer at its end).
pub(crate) fn read_range(
    loc: &Location,
    opts: &StorageOptions,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, FrameError> {
    match loc {
        Location::Local(p) => {
            let mut f = std::fs::File::open(p).map_err(|e| FrameError::io(p, e))?;
            f.seek(SeekFrom::Start(start))
                .map_err(|e| FrameError::io(p, e))?;
            let mut buf = Vec::with_capacity((end - start) as usize);
            f.take(end - start)
                .read_to_end(&mut buf)
                .map_err(|e| FrameError::io(p, e))?;
            Ok(buf)
        }
        Location::S3 { bucket, key } => {
            let total = size(loc, opts)?;
            let end = end.min(total);
            if start >= end {
                return Ok(Vec::new());
            }
            let (b, path, shown) = s3(loc, bucket, key, opts)?;
            block_on(&shown.clone(), async move {
                b.store
                    .get_range(&path, start..end)
                    .await
                    .map(|bytes| bytes.to_vec())
                    .map_err(|e| b.err(&shown, e))
            })
        }
    }
}

/// Writes a whole file (atomically for objects; callers rename local temporaries).
pub(crate) fn write_all(
    loc: &Location,
    opts: &StorageOptions,
    bytes: Vec<u8>,
) -> Result<(), FrameError> {
    match loc {
        Location::Local(p) => std::fs::write(p, bytes).map_err(|e| FrameError::io(p, e)),
        Location::S3 { bucket, key } => {
            let (b, path, shown) = s3(loc, bucket, key, opts)?;
            block_on(&shown.clone(), async move {
                b.store
                    .put(&path, bytes.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| b.err(&shown, e))
            })
        }
    }
}

/// Deletes an object or file, ignoring one that is already gone.
pub(crate) fn delete(loc: &Location, opts: &StorageOptions) -> Result<(), FrameError> {
    match loc {
        Location::Local(p) => match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FrameError::io(p, e)),
            _ => Ok(()),
        },
        Location::S3 { bucket, key } => {
            let (b, path, shown) = s3(loc, bucket, key, opts)?;
            block_on(&shown.clone(), async move {
                match b.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(b.err(&shown, e)),
                }
            })
        }
    }
}

/// Copies an object (used to publish written files under their final names).
pub(crate) fn rename(
    from: &Location,
    to: &Location,
    opts: &StorageOptions,
) -> Result<(), FrameError> {
    match (from, to) {
        (Location::Local(a), Location::Local(b)) => {
            std::fs::rename(a, b).map_err(|e| FrameError::io(b, e))
        }
        (Location::S3 { bucket, key }, Location::S3 { key: to_key, .. }) => {
            let (b, path, _) = s3(from, bucket, key, opts)?;
            let (to_path, shown) = (ObjectPath::from(to_key.as_str()), to.display());
            block_on(&shown.clone(), async move {
                b.store
                    .rename(&path, &to_path)
                    .await
                    .map_err(|e| b.err(&shown, e))
            })
        }
        _ => Err(FrameError::Invalid(
            "cannot move files between stores".into(),
        )),
    }
}
