//! Where files live: local paths and `s3://` URLs (through `object_store`), listing with globs
//! and directories, and reading whole objects or byte ranges.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, OnceLock};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::error::FrameError;

/// Options for object storage (`s3://` paths), as Dask's `storage_options`.
///
/// Unset fields fall back to the usual `AWS_*` environment variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StorageOptions {
    /// Endpoint URL, e.g. `http://127.0.0.1:5000` for a local S3 server.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
}

impl StorageOptions {
    /// Options for an S3-compatible endpoint with static credentials.
    pub fn s3(
        endpoint: impl Into<String>,
        key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        StorageOptions {
            endpoint: Some(endpoint.into()),
            access_key_id: Some(key.into()),
            secret_access_key: Some(secret.into()),
            region: None,
        }
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

type StoreKey = (String, StorageOptions);

fn store(bucket: &str, opts: &StorageOptions) -> Result<Arc<dyn ObjectStore>, FrameError> {
    static STORES: OnceLock<Mutex<HashMap<StoreKey, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let key = (bucket.to_owned(), opts.clone());
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = stores.get(&key) {
        return Ok(s.clone());
    }
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(e) = &opts.endpoint {
        b = b
            .with_endpoint(e.clone())
            .with_allow_http(e.starts_with("http://"));
    }
    if let Some(k) = &opts.access_key_id {
        b = b.with_access_key_id(k.clone());
    }
    if let Some(s) = &opts.secret_access_key {
        b = b.with_secret_access_key(s.clone());
    }
    b = b.with_region(opts.region.clone().unwrap_or_else(|| "us-east-1".into()));
    let s: Arc<dyn ObjectStore> = Arc::new(
        b.build()
            .map_err(|e| FrameError::io(format!("s3://{bucket}"), e))?,
    );
    stores.insert(key, s.clone());
    Ok(s)
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
    bucket: &str,
    key: &str,
    extensions: &[&str],
    opts: &StorageOptions,
    out: &mut Vec<Location>,
) -> Result<(), FrameError> {
    let s = store(bucket, opts)?;
    let shown = format!("s3://{bucket}/{key}");
    let glob_at = key.find(['*', '?', '[']);
    // A single object named exactly.
    if glob_at.is_none() && !key.is_empty() && !key.ends_with('/') {
        let exact = runtime().block_on(async { s.head(&ObjectPath::from(key)).await });
        if exact.is_ok() {
            out.push(Location::S3 {
                bucket: bucket.to_owned(),
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
    let listed: Vec<String> = runtime().block_on(async {
        use futures::TryStreamExt;
        let p = ObjectPath::from(prefix);
        let metas: Vec<object_store::ObjectMeta> = s
            .list(if prefix.is_empty() { None } else { Some(&p) })
            .try_collect()
            .await
            .map_err(|e| FrameError::io(&shown, e))?;
        Ok::<_, FrameError>(metas.into_iter().map(|m| m.location.to_string()).collect())
    })?;
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
        bucket: bucket.to_owned(),
        key,
    }));
    Ok(())
}

/// The whole file.
pub(crate) fn read_all(loc: &Location, opts: &StorageOptions) -> Result<Vec<u8>, FrameError> {
    match loc {
        Location::Local(p) => std::fs::read(p).map_err(|e| FrameError::io(p, e)),
        Location::S3 { bucket, key } => {
            let s = store(bucket, opts)?;
            runtime().block_on(async {
                let r = s
                    .get(&ObjectPath::from(key.as_str()))
                    .await
                    .map_err(|e| FrameError::io(loc.display(), e))?;
                let b = r
                    .bytes()
                    .await
                    .map_err(|e| FrameError::io(loc.display(), e))?;
                Ok(b.to_vec())
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
            let s = store(bucket, opts)?;
            runtime().block_on(async {
                s.head(&ObjectPath::from(key.as_str()))
                    .await
                    .map(|m| m.size)
                    .map_err(|e| FrameError::io(loc.display(), e))
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
            let s = store(bucket, opts)?;
            runtime().block_on(async {
                s.get_range(&ObjectPath::from(key.as_str()), start..end)
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| FrameError::io(loc.display(), e))
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
            let s = store(bucket, opts)?;
            runtime().block_on(async {
                s.put(&ObjectPath::from(key.as_str()), bytes.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| FrameError::io(loc.display(), e))
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
            let s = store(bucket, opts)?;
            runtime().block_on(async {
                match s.delete(&ObjectPath::from(key.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(FrameError::io(loc.display(), e)),
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
            let s = store(bucket, opts)?;
            runtime().block_on(async {
                s.rename(
                    &ObjectPath::from(key.as_str()),
                    &ObjectPath::from(to_key.as_str()),
                )
                .await
                .map_err(|e| FrameError::io(to.display(), e))
            })
        }
        _ => Err(FrameError::Invalid(
            "cannot move files between stores".into(),
        )),
    }
}
