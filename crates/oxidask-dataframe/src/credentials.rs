//! Where S3 credentials come from, and how they stay out of task specs, logs and `Debug`.
//!
//! [`StorageOptions`](crate::StorageOptions) says *where* credentials are found, never what
//! they are. A [`Credentials`] reference is resolved by the process that touches the bucket:
//! the client when it lists files, reads a schema or publishes written files; a worker when
//! it reads or writes a partition.
//!
//! - [`Credentials::Environment`] (the default): the standard `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` variables of that process (and the rest of
//!   the chain `object_store` follows when they are unset: web identity, container and
//!   instance credentials).
//! - [`Credentials::Named`]: a secret of that name in that process's environment,
//!   `OXIDASK_SECRET_<NAME>_ACCESS_KEY_ID`, `OXIDASK_SECRET_<NAME>_SECRET_ACCESS_KEY` and
//!   optionally `OXIDASK_SECRET_<NAME>_SESSION_TOKEN`, where `<NAME>` is the name in upper
//!   case with `-` and `.` written as `_` (`"prod"` → `OXIDASK_SECRET_PROD_…`). Different
//!   buckets can use different keys this way, and a deployment sets them like any other
//!   secret (a Kubernetes secret as environment, systemd's `EnvironmentFile=`).
//! - [`Credentials::Static`]: keys given in code. They stay in this process: local
//!   schedulers use them, and a distributed scheduler refuses the graph with an error saying
//!   to use one of the other two.
//!
//! # Invariants
//! - Secret material is never serialized: [`StaticCredentials`] refuses serde in both
//!   directions, and a task argument holding it is a process-local value whose encoding
//!   fails with [`KEYS_STAY_LOCAL`] (see [`plan_value`]).
//! - `Debug` of every type here prints `***` in place of keys.
//! - Error messages built from storage errors go through [`Redactor::scrub`], which removes
//!   the key id, secret and token that were in use (S3 echoes the key id in some errors).

use std::fmt;

use oxidask_core::codec::CodecError;
use oxidask_core::{Encoded, Foreign, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FrameError;
use crate::partition::Plan;

/// Where a process finds the S3 keys for a [`StorageOptions`](crate::StorageOptions).
///
/// Resolved where the bucket is touched (the client, or the worker running the task), so
/// only the reference — never a key — is part of a task.
///
/// ```
/// use oxidask_dataframe::{Credentials, StorageOptions};
///
/// // On a cluster: keys from each worker's environment (the default)…
/// let env = StorageOptions::endpoint("http://127.0.0.1:9000");
/// // …or from a named secret, OXIDASK_SECRET_PROD_ACCESS_KEY_ID and
/// // OXIDASK_SECRET_PROD_SECRET_ACCESS_KEY, set on the client and every worker.
/// let prod = StorageOptions::default().credentials(Credentials::named("prod"));
/// // On a local scheduler only: keys given in code, which never leave this process.
/// let local = StorageOptions::default().credentials(Credentials::static_keys("AKID", "s3cr3t"));
/// assert!(!format!("{local:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (then web
    /// identity, container and instance credentials) of the process that reads.
    #[default]
    Environment,
    /// The secret of this name in the environment of the process that reads:
    /// `OXIDASK_SECRET_<NAME>_ACCESS_KEY_ID`, `…_SECRET_ACCESS_KEY`, optional
    /// `…_SESSION_TOKEN`; `<NAME>` upper-cased, `-` and `.` written as `_`.
    Named(String),
    /// Keys given in code. Usable by local schedulers only: a graph carrying them is refused
    /// by a distributed scheduler, so the keys never leave this process.
    Static(StaticCredentials),
}

impl Credentials {
    /// A named secret, looked up where the bucket is read (see [`Credentials::Named`]).
    pub fn named(name: impl Into<String>) -> Credentials {
        Credentials::Named(name.into())
    }

    /// Keys given in code, for local schedulers (see [`Credentials::Static`]).
    pub fn static_keys(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Credentials {
        Credentials::Static(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        })
    }

    /// Temporary keys given in code (with a session token), for local schedulers.
    pub fn static_session(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: impl Into<String>,
    ) -> Credentials {
        Credentials::Static(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: Some(session_token.into()),
        })
    }

    /// True if tasks using these credentials may run in another process (everything but
    /// keys given in code).
    pub fn is_portable(&self) -> bool {
        !matches!(self, Credentials::Static(_))
    }

    /// The keys to use in this process, reading the environment through `env`; `None` means
    /// `object_store`'s own chain (the `AWS_*` variables, then web identity, container and
    /// instance credentials).
    pub(crate) fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Keys>, FrameError> {
        match self {
            Credentials::Environment => Ok(None),
            Credentials::Static(s) => Ok(Some(Keys {
                access_key_id: s.access_key_id.clone(),
                secret_access_key: s.secret_access_key.clone(),
                session_token: s.session_token.clone(),
            })),
            Credentials::Named(name) => {
                let prefix = secret_prefix(name)?;
                let var = |suffix: &str| format!("{prefix}{suffix}");
                let get = |suffix: &str| env(&var(suffix)).filter(|v| !v.is_empty());
                let (id, secret) = (get("ACCESS_KEY_ID"), get("SECRET_ACCESS_KEY"));
                match (id, secret) {
                    (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Keys {
                        access_key_id,
                        secret_access_key,
                        session_token: get("SESSION_TOKEN"),
                    })),
                    (id, secret) => Err(FrameError::MissingSecret {
                        name: name.clone(),
                        missing: [("ACCESS_KEY_ID", id), ("SECRET_ACCESS_KEY", secret)]
                            .into_iter()
                            .filter(|(_, v)| v.is_none())
                            .map(|(s, _)| var(s))
                            .collect(),
                    }),
                }
            }
        }
    }

    /// Feeds what identifies the credentials (not the keys) to a token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Credentials::Environment => "env".into(),
            Credentials::Named(n) => format!("named:{n}"),
            // Keys given in code never reach a key or token, not even hashed.
            Credentials::Static(_) => "static".into(),
        }
    }
}

/// The environment-variable prefix of a named secret: `OXIDASK_SECRET_PROD_` for `prod`.
pub(crate) fn secret_prefix(name: &str) -> Result<String, FrameError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(FrameError::Invalid(format!(
            "`{name}` cannot name a secret: use ASCII letters, digits, `_`, `-` or `.` (it becomes part of the environment variables OXIDASK_SECRET_<NAME>_ACCESS_KEY_ID and OXIDASK_SECRET_<NAME>_SECRET_ACCESS_KEY)"
        )));
    }
    let upper: String = name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    Ok(format!("OXIDASK_SECRET_{upper}_"))
}

/// S3 keys given in code ([`Credentials::static_keys`]).
///
/// Its `Debug` prints `***`, and it refuses to be serialized or deserialized: keys given in
/// code stay in the process that was given them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StaticCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticCredentials(***)")
    }
}

/// Why keys given in code cannot travel, and what to use instead.
pub(crate) const KEYS_STAY_LOCAL: &str = "S3 keys given in code (Credentials::static_keys) stay in this process and work with local schedulers only; on a cluster, give every worker the keys in its environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, used by the default Credentials::Environment) or as a named secret (Credentials::named(\"prod\") with OXIDASK_SECRET_PROD_ACCESS_KEY_ID and OXIDASK_SECRET_PROD_SECRET_ACCESS_KEY)";

impl Serialize for StaticCredentials {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(KEYS_STAY_LOCAL))
    }
}

impl<'de> Deserialize<'de> for StaticCredentials {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(KEYS_STAY_LOCAL))
    }
}

/// Keys resolved in this process. Never serialized; `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(***)")
    }
}

/// Removes the keys in use from messages before they become errors.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these values (empty ones are ignored).
    pub(crate) fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// `message` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, message: impl fmt::Display) -> String {
        let mut m = message.to_string();
        for s in &self.secrets {
            if m.contains(s.as_str()) {
                m = m.replace(s.as_str(), "***");
            }
        }
        m
    }
}

/// A plan as a task argument: a value that travels, unless the plan's storage options hold
/// keys given in code — then a value kept in this process, whose encoding fails with
/// [`KEYS_STAY_LOCAL`] so a distributed scheduler refuses the graph before anything is sent.
pub(crate) fn plan_value<T>(plan: T, credentials: &Credentials) -> Value
where
    T: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    if credentials.is_portable() {
        Value::new(Plan(plan))
    } else {
        Value::foreign(Plan(plan))
    }
}

/// A plan held as a [`Foreign`] value is one that must not leave this process: it carries S3
/// keys given in code ([`Credentials::Static`]). `Foreign` is the value kind whose encoding
/// may fail with a reason, and a distributed scheduler reports that reason; this encoding
/// always fails, telling the user to put the keys in the workers' environment instead.
impl<T: Send + Sync + 'static> Foreign for Plan<T> {
    fn nbytes(&self) -> usize {
        std::mem::size_of::<T>()
    }

    fn codec_name(&self) -> &'static str {
        "oxidask_dataframe::Plan (with S3 keys given in code)"
    }

    fn encode(&self, _: &mut Encoded) -> Result<(), CodecError> {
        Err(CodecError::Foreign {
            type_name: "dataframe task with S3 keys given in code".into(),
            message: KEYS_STAY_LOCAL.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn named_secrets_come_from_prefixed_environment_variables() {
        let env = env_of(&[
            ("OXIDASK_SECRET_PROD_EU_ACCESS_KEY_ID", "AKID"),
            ("OXIDASK_SECRET_PROD_EU_SECRET_ACCESS_KEY", "s3cr3t"),
            ("OXIDASK_SECRET_PROD_EU_SESSION_TOKEN", "tok"),
        ]);
        let keys = Credentials::named("prod-eu").resolve(env).unwrap().unwrap();
        assert_eq!(keys.access_key_id, "AKID");
        assert_eq!(keys.secret_access_key, "s3cr3t");
        assert_eq!(keys.session_token.as_deref(), Some("tok"));
    }

    #[test]
    fn a_missing_named_secret_names_the_variables_to_set_and_no_values() {
        let env = env_of(&[("OXIDASK_SECRET_PROD_ACCESS_KEY_ID", "AKIDVALUE")]);
        let err = Credentials::named("prod")
            .resolve(env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OXIDASK_SECRET_PROD_SECRET_ACCESS_KEY"),
            "{err}"
        );
        assert!(!err.contains("OXIDASK_SECRET_PROD_ACCESS_KEY_ID"), "{err}");
        assert!(!err.contains("AKIDVALUE"), "{err}");
    }

    #[test]
    fn secret_names_that_cannot_be_variables_are_refused() {
        let err = Credentials::named("a b").resolve(env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("cannot name a secret"), "{err}");
        assert!(Credentials::named("").resolve(env_of(&[])).is_err());
    }

    #[test]
    fn static_keys_print_and_serialize_no_secret() {
        let c = Credentials::static_session("AKIDSECRETID", "s3cr3t-value", "tok3n-value");
        let shown = format!("{c:?} {c:#?}");
        for s in ["AKIDSECRETID", "s3cr3t-value", "tok3n-value"] {
            assert!(!shown.contains(s), "{shown}");
        }
        let err = polars::polars_utils::pl_serialize::serialize_to_bytes::<_, false>(&c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Credentials::Environment"), "{err}");
        let refs = Credentials::named("prod");
        let bytes =
            polars::polars_utils::pl_serialize::serialize_to_bytes::<_, false>(&refs).unwrap();
        let back: Credentials =
            polars::polars_utils::pl_serialize::deserialize_from_reader::<_, _, false>(
                bytes.as_slice(),
            )
            .unwrap();
        assert_eq!(back, refs);
    }

    #[test]
    fn redaction_replaces_every_secret_longest_first() {
        let r = Redactor::new(["AKID".to_string(), "AKIDLONGER".to_string(), String::new()]);
        assert_eq!(
            r.scrub("Credential=AKIDLONGER/2026 and AKID"),
            "Credential=***/2026 and ***"
        );
    }
}
