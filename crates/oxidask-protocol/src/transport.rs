//! How bytes reach a peer: plain TCP or TLS (rustls), then an authentication preamble —
//! all before any message is decoded.
//!
//! Every listener (scheduler, worker data port) accepts through [`Security::accept`] and
//! every connection is opened with [`Security::connect`]:
//!
//! 1. TCP, then a TLS handshake when the address is `tls://` (mutual: the listener asks for a
//!    certificate signed by its CA, the connecting side checks the listener's against its
//!    own; as in Dask, the certificate's host name is not checked, since one certificate is
//!    usually shared by a whole cluster).
//! 2. The preamble: `b"OXDK"`, a version byte, a `u16` length and the authentication token
//!    (empty when none). The listener answers one byte, [`ACCEPTED`] or [`REFUSED_TOKEN`].
//!    A listener with a token refuses any other before reading a single message.
//!
//! Both steps run under the handshake timeout, so a peer that connects and says nothing
//! ("slow loris") holds nothing for long.
//!
//! ```
//! use oxidask_protocol::transport::Security;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let security = Security::temporary().unwrap().with_token("s3cret");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let address = format!("tls://{}", listener.local_addr().unwrap());
//! let server = security.clone();
//! tokio::spawn(async move {
//!     let (tcp, peer) = listener.accept().await.unwrap();
//!     server.accept(tcp, peer).await.unwrap();
//! });
//! let stream = security.connect(&address).await.unwrap();
//! assert!(stream.is_tls());
//! # });
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::ProtocolError;

/// The preamble's first bytes.
pub const MAGIC: &[u8; 4] = b"OXDK";
/// The preamble's version.
pub const PREAMBLE_VERSION: u8 = 1;
/// The listener's answer: go on.
pub const ACCEPTED: u8 = 0;
/// The listener's answer: the token is wrong or missing.
pub const REFUSED_TOKEN: u8 = 1;
/// Longest token a listener reads.
pub const MAX_TOKEN: usize = 4096;
/// Default time a peer has for the TLS handshake and the preamble.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a TCP connection may take (`distributed.comm.timeouts.connect`, 30 s as
/// Dask's): an address that drops packets (a worker's private address seen from a client
/// behind a tunnel) fails after this, not after the kernel's two minutes.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why credentials could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file or text holds no usable PEM of the expected kind.
    #[error("the TLS {what} ({origin}) holds no {expected}; give a PEM file with a \"-----BEGIN {expected}-----\" block")]
    Pem {
        /// Which credential.
        what: &'static str,
        /// Where it came from.
        origin: String,
        /// What was expected.
        expected: &'static str,
    },
    /// rustls refused the credentials.
    #[error("invalid TLS credentials: {0}")]
    Tls(#[from] rustls::Error),
    /// The client verifier could not be built (e.g. an empty CA).
    #[error("invalid TLS CA: {0}")]
    Verifier(String),
    /// Making temporary credentials failed.
    #[error("cannot make temporary TLS credentials: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate without the CA that signed the cluster's certificates.
    #[error("a TLS certificate needs the CA that signed the cluster's certificates: give --tls-ca-file (distributed.comm.tls.ca-file)")]
    NoCa,
    /// Only one of certificate and key was given.
    #[error("a TLS certificate needs its key and a key its certificate: give both --tls-cert and --tls-key")]
    Unpaired,
}

/// PEM text of a CA, and optionally of this side's certificate and key.
#[derive(Clone)]
pub struct TlsCredentials {
    /// The CA certificate(s) peers' certificates must be signed by.
    pub ca: String,
    /// This side's certificate chain (a listener needs one; a connecting side without one is
    /// refused by listeners that ask for certificates, which all oxidask listeners do).
    pub cert: Option<String>,
    /// The key of `cert`.
    pub key: Option<String>,
}

impl fmt::Debug for TlsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCredentials")
            .field("ca", &format_args!("{} bytes", self.ca.len()))
            .field("cert", &self.cert.as_ref().map(|c| c.len()))
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The TLS versions spoken (`distributed.comm.tls.min-version` / `max-version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsVersions {
    /// Accept TLS 1.2 (otherwise only 1.3).
    pub tls12: bool,
    /// Accept TLS 1.3 (otherwise only 1.2).
    pub tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions {
            tls12: true,
            tls13: true,
        }
    }
}

impl TlsVersions {
    /// From `min` and `max` as the configuration spells them (`"1.2"`, `"1.3"`, `None`:
    /// no bound).
    pub fn between(min: Option<&str>, max: Option<&str>) -> TlsVersions {
        TlsVersions {
            tls12: min != Some("1.3"),
            tls13: max != Some("1.2"),
        }
    }

    fn protocols(self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, SecurityError> {
        let mut v = Vec::new();
        if self.tls13 {
            v.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            v.push(&rustls::version::TLS12);
        }
        if v.is_empty() {
            return Err(SecurityError::Verifier(
                "no TLS version left: distributed.comm.tls.min-version is above max-version".into(),
            ));
        }
        Ok(v)
    }
}

/// Where TLS credentials were written (see [`Security::write_files`]), to hand to other
/// processes as `--tls-ca-file`, `--tls-cert` and `--tls-key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// This side's certificate, if any.
    pub cert: Option<PathBuf>,
    /// Its key, if any.
    pub key: Option<PathBuf>,
}

/// A throwaway certificate authority, for [`Security::temporary`] and tests.
pub struct TemporaryCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TemporaryCa {
    /// A new CA with a fresh key.
    pub fn new() -> Result<TemporaryCa, SecurityError> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "oxidask temporary CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TemporaryCa {
            issuer: rcgen::Issuer::new(params, key),
            pem: cert.pem(),
        })
    }

    /// A certificate for `localhost`, `127.0.0.1` and `::1` signed by this CA, valid from
    /// yesterday for a year.
    pub fn issue(&self) -> Result<TlsCredentials, SecurityError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.issue_between(now - 86_400, now + 365 * 86_400)
    }

    /// A certificate that expired yesterday: for testing that it is refused.
    pub fn issue_expired(&self) -> Result<TlsCredentials, SecurityError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.issue_between(now - 30 * 86_400, now - 86_400)
    }

    fn issue_between(&self, from: i64, until: i64) -> Result<TlsCredentials, SecurityError> {
        let mut params = rcgen::CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "oxidask");
        let at = |t: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(t.max(0) as u64);
        params.not_before = at(from);
        params.not_after = at(until);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(TlsCredentials {
            ca: self.pem.clone(),
            cert: Some(cert.pem()),
            key: Some(key.serialize_pem()),
        })
    }
}

struct Tls {
    credentials: TlsCredentials,
    client: Arc<ClientConfig>,
    server: Option<Arc<tokio_rustls::TlsAcceptor>>,
}

/// How this process connects and accepts: TLS credentials, an authentication token, and the
/// handshake timeout. Cheap to clone; [`Security::default`] is plain TCP with no token.
#[derive(Clone)]
pub struct Security {
    tls: Option<Arc<Tls>>,
    token: Option<Arc<str>>,
    require_encryption: bool,
    handshake_timeout: Duration,
    connect_timeout: Duration,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            tls: None,
            token: None,
            require_encryption: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("require_encryption", &self.require_encryption)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(
    pem: &str,
    what: &'static str,
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(SecurityError::Pem {
            what,
            origin: origin.to_owned(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

impl Security {
    /// Plain TCP, no token (the default).
    pub fn plain() -> Security {
        Security::default()
    }

    /// TLS with credentials given as PEM text (TLS 1.2 and 1.3).
    pub fn tls(credentials: TlsCredentials) -> Result<Security, SecurityError> {
        Security::tls_versions(credentials, TlsVersions::default())
    }

    /// TLS with credentials given as PEM text, speaking only `versions`.
    pub fn tls_versions(
        credentials: TlsCredentials,
        versions: TlsVersions,
    ) -> Result<Security, SecurityError> {
        let protocols = versions.protocols()?;
        let roots = {
            let mut roots = RootCertStore::empty();
            for c in certs(&credentials.ca, "CA", "the CA given")? {
                roots.add(c)?;
            }
            Arc::new(roots)
        };
        let identity = match (&credentials.cert, &credentials.key) {
            (Some(cert), Some(key)) => {
                let chain = certs(cert, "certificate", "the certificate given")?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| {
                    SecurityError::Pem {
                        what: "key",
                        origin: "the key given".into(),
                        expected: "PRIVATE KEY",
                    }
                })?;
                Some((chain, key))
            }
            (None, None) => None,
            _ => return Err(SecurityError::Unpaired),
        };
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| SecurityError::Verifier(e.to_string()))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&protocols)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyNameVerifier(server_verifier)));
        let client = match &identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        let server = match identity {
            Some((chain, key)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| SecurityError::Verifier(e.to_string()))?;
                let config = ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(&protocols)?
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(chain, key)?;
                Some(Arc::new(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
            }
            None => None,
        };
        Ok(Security {
            tls: Some(Arc::new(Tls {
                credentials,
                client: Arc::new(client),
                server,
            })),
            ..Security::default()
        })
    }

    /// TLS with credentials read from PEM files (`--tls-ca-file`, `--tls-cert`, `--tls-key`).
    pub fn tls_from_files(
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Security, SecurityError> {
        Security::tls(read_credentials(ca, cert, key)?)
    }

    /// Self-signed credentials made on the spot (a fresh CA and a certificate it signed), as
    /// Dask's `Security.temporary()`: for a `LocalCluster` whose processes get them through
    /// [`Security::write_files`].
    pub fn temporary() -> Result<Security, SecurityError> {
        Security::tls(TemporaryCa::new()?.issue()?)
    }

    /// Also authenticate with a shared token: listeners refuse peers that do not present it,
    /// and connections present it.
    pub fn with_token(mut self, token: impl Into<String>) -> Security {
        let t: String = token.into();
        self.token = if t.is_empty() { None } else { Some(t.into()) };
        self
    }

    /// Refuse plain `tcp://` connections, both ways (`distributed.comm.require-encryption`).
    pub fn require_encryption(mut self, on: bool) -> Security {
        self.require_encryption = on;
        self
    }

    /// How long a peer has for the TLS handshake and the preamble (default 10 s).
    pub fn handshake_timeout(mut self, t: Duration) -> Security {
        self.handshake_timeout = t;
        self
    }

    /// How long opening a TCP connection may take before it fails with a timed-out I/O
    /// error (`distributed.comm.timeouts.connect`, default 30 s).
    pub fn connect_timeout(mut self, t: Duration) -> Security {
        self.connect_timeout = t;
        self
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether a token is required and presented.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The token, for handing to processes this one starts.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The scheme this side's listeners advertise: `tls` or `tcp`.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() {
            "tls"
        } else {
            "tcp"
        }
    }

    /// The credentials, if TLS.
    pub fn credentials(&self) -> Option<&TlsCredentials> {
        self.tls.as_ref().map(|t| &t.credentials)
    }

    /// Writes the TLS credentials as PEM files into `dir` (the key readable by the owner
    /// only), for processes this one starts.
    pub fn write_files(&self, dir: &Path) -> io::Result<Option<TlsFiles>> {
        let Some(c) = self.credentials() else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir)?;
        let write = |name: &str, text: &str, private: bool| -> io::Result<PathBuf> {
            let path = dir.join(name);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            if private {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            #[cfg(not(unix))]
            let _ = private;
            std::io::Write::write_all(&mut opts.open(&path)?, text.as_bytes())?;
            Ok(path)
        };
        Ok(Some(TlsFiles {
            ca: write("ca.pem", &c.ca, false)?,
            cert: c
                .cert
                .as_deref()
                .map(|t| write("cert.pem", t, false))
                .transpose()?,
            key: c
                .key
                .as_deref()
                .map(|t| write("key.pem", t, true))
                .transpose()?,
        }))
    }

    /// `address` with this side's scheme (`host:port` → `tls://host:port` when TLS).
    pub fn advertise(&self, host_port: &str) -> String {
        format!("{}://{}", self.scheme(), crate::strip_any_scheme(host_port))
    }

    /// Opens a connection to `address` (`tcp://`, `tls://` or bare `host:port`, which means
    /// this side's scheme), completes TLS and the preamble.
    pub async fn connect(&self, address: &str) -> Result<Stream, ProtocolError> {
        let (tls, host_port) = self.route(address)?;
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(host_port))
            .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(ProtocolError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "could not connect to {address} within {:?} (distributed.comm.timeouts.connect); is it reachable from here?",
                        self.connect_timeout
                    ),
                )))
            }
        };
        tcp.set_nodelay(true)?;
        match tokio::time::timeout(self.handshake_timeout, self.connect_over(tcp, tls, host_port))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(ProtocolError::Refused(format!(
                "{address} did not complete the connection handshake within {:?}; is it an oxidask scheduler or worker, and is the scheme (tcp:// or tls://) right?",
                self.handshake_timeout
            ))),
        }
    }

    fn route<'a>(&self, address: &'a str) -> Result<(bool, &'a str), ProtocolError> {
        let (scheme, rest) = match address.split_once("://") {
            Some((s, r)) => (s, r),
            None => (self.scheme(), address),
        };
        match scheme {
            "tls" if self.tls.is_none() => Err(ProtocolError::Refused(format!(
                "{address} speaks TLS but this side has no TLS credentials: give them (--tls-ca-file, --tls-cert and --tls-key; Security::tls_from_files in Rust; security=Security(...) in Python)"
            ))),
            "tls" => Ok((true, rest)),
            "tcp" if self.require_encryption => Err(ProtocolError::Refused(format!(
                "{address} is plain TCP but encryption is required (distributed.comm.require-encryption): use its tls:// address"
            ))),
            "tcp" => Ok((false, rest)),
            other => Err(ProtocolError::Refused(format!(
                "unknown scheme {other}:// in {address}: use tcp:// or tls://"
            ))),
        }
    }

    async fn connect_over(
        &self,
        tcp: TcpStream,
        tls: bool,
        host_port: &str,
    ) -> Result<Stream, ProtocolError> {
        let mut stream = if tls {
            let t = self
                .tls
                .as_ref()
                .expect("routed to TLS only with credentials");
            let name = crate::split_host_port(host_port)
                .and_then(|(h, _)| ServerName::try_from(h.to_owned()).ok())
                .unwrap_or_else(|| ServerName::try_from("oxidask").expect("a valid name"));
            let s = tokio_rustls::TlsConnector::from(t.client.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    ProtocolError::Refused(format!(
                        "the TLS handshake with {host_port} failed: {e}; check that it is a tls:// address and that both sides' certificates are signed by the same CA and not expired"
                    ))
                })?;
            Stream::Tls(Box::new(s.into()))
        } else {
            Stream::Plain(tcp)
        };
        let token = self.token.as_deref().unwrap_or("").as_bytes();
        let mut pre = Vec::with_capacity(7 + token.len());
        pre.extend_from_slice(MAGIC);
        pre.push(PREAMBLE_VERSION);
        pre.extend_from_slice(&(token.len() as u16).to_le_bytes());
        pre.extend_from_slice(token);
        stream.write_all(&pre).await?;
        stream.flush().await?;
        let mut answer = [0u8; 1];
        match stream.read_exact(&mut answer).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ProtocolError::Refused(format!(
                    "{host_port} closed the connection at once: if it is a TLS listener, connect to its tls:// address with TLS credentials; otherwise it refused this side's certificate"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        match answer[0] {
            ACCEPTED => Ok(stream),
            REFUSED_TOKEN if token.is_empty() => Err(ProtocolError::Refused(format!(
                "{host_port} requires an authentication token: set distributed.comm.auth.token (OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN) or pass --auth-token"
            ))),
            REFUSED_TOKEN => Err(ProtocolError::Refused(format!(
                "{host_port} refused the authentication token: it differs from the cluster's"
            ))),
            // A TLS alert record: a TLS listener answering plain bytes.
            0x15 => Err(ProtocolError::Refused(format!(
                "{host_port} is a TLS listener: connect to its tls:// address with TLS credentials (--tls-ca-file, --tls-cert, --tls-key)"
            ))),
            other => Err(ProtocolError::Refused(format!(
                "{host_port} is not an oxidask listener (answered byte {other} to the preamble)"
            ))),
        }
    }

    /// Completes TLS and the preamble on an accepted connection, within the handshake
    /// timeout. An error means the peer was refused (log it with `peer`); nothing it sent was
    /// decoded as a message.
    pub async fn accept(&self, tcp: TcpStream, peer: SocketAddr) -> Result<Stream, ProtocolError> {
        let _ = tcp.set_nodelay(true);
        match tokio::time::timeout(self.handshake_timeout, self.accept_over(tcp)).await {
            Ok(r) => r.map_err(|e| match e {
                ProtocolError::Refused(why) => ProtocolError::Refused(format!("{peer}: {why}")),
                other => ProtocolError::Refused(format!("{peer}: {other}")),
            }),
            Err(_) => Err(ProtocolError::Refused(format!(
                "{peer}: no handshake within {:?}",
                self.handshake_timeout
            ))),
        }
    }

    async fn accept_over(&self, tcp: TcpStream) -> Result<Stream, ProtocolError> {
        let mut stream = match &self.tls {
            Some(t) => {
                let acceptor = t.server.as_ref().ok_or_else(|| {
                    ProtocolError::Refused(
                        "this side has no TLS certificate to listen with: give --tls-cert and --tls-key".into(),
                    )
                })?;
                let s = acceptor.accept(tcp).await.map_err(|e| {
                    ProtocolError::Refused(format!(
                        "TLS handshake failed ({e}): a plain tcp:// client, or a certificate not signed by this cluster's CA, expired, or missing"
                    ))
                })?;
                Stream::Tls(Box::new(s.into()))
            }
            None if self.require_encryption => {
                return Err(ProtocolError::Refused(
                    "plain TCP refused: encryption is required".into(),
                ))
            }
            None => Stream::Plain(tcp),
        };
        let mut head = [0u8; 7];
        stream.read_exact(&mut head).await.map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ProtocolError::Closed
            } else {
                e.into()
            }
        })?;
        if &head[..4] != MAGIC {
            let tls_hello = head[0] == 0x16 && head[1] == 0x03;
            return Err(ProtocolError::Refused(if tls_hello {
                "a TLS client on this plain tcp:// port: give this side TLS credentials or connect with tcp://".into()
            } else {
                format!(
                    "not an oxidask peer (its first bytes were {:02x?})",
                    &head[..4]
                )
            }));
        }
        if head[4] != PREAMBLE_VERSION {
            return Err(ProtocolError::Refused(format!(
                "preamble version {} (this side speaks {PREAMBLE_VERSION}); run the same oxidask version on both",
                head[4]
            )));
        }
        let len = u16::from_le_bytes([head[5], head[6]]) as usize;
        if len > MAX_TOKEN {
            return Err(ProtocolError::TooLarge {
                what: "token",
                size: len,
                limit: MAX_TOKEN,
            });
        }
        let mut token = vec![0u8; len];
        stream.read_exact(&mut token).await?;
        let ok = match &self.token {
            None => true,
            Some(ours) => constant_time_eq(ours.as_bytes(), &token),
        };
        stream
            .write_all(&[if ok { ACCEPTED } else { REFUSED_TOKEN }])
            .await?;
        stream.flush().await?;
        if ok {
            Ok(stream)
        } else if token.is_empty() {
            Err(ProtocolError::Refused("no authentication token".into()))
        } else {
            Err(ProtocolError::Refused("wrong authentication token".into()))
        }
    }
}

/// Reads PEM files, checking each holds what it should (errors name the file).
fn read_credentials(
    ca: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<TlsCredentials, SecurityError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read_to_string(path).map_err(|source| SecurityError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let credentials = TlsCredentials {
        ca: read("CA", ca)?,
        cert: cert.map(|p| read("certificate", p)).transpose()?,
        key: key.map(|p| read("key", p)).transpose()?,
    };
    certs(&credentials.ca, "CA", &ca.display().to_string())?;
    if let (Some(c), Some(p)) = (&credentials.cert, cert) {
        certs(c, "certificate", &p.display().to_string())?;
    }
    if let (Some(k), Some(p)) = (&credentials.key, key) {
        PrivateKeyDer::from_pem_slice(k.as_bytes()).map_err(|_| SecurityError::Pem {
            what: "key",
            origin: p.display().to_string(),
            expected: "PRIVATE KEY",
        })?;
    }
    Ok(credentials)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the server's chain against the CA, and its validity, but not its host name.
#[derive(Debug)]
struct AnyNameVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain and validity before the name, so a name error means the
        // rest passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A connection: plain TCP or TLS over TCP.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (either side of it).
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Plain(s) => write!(f, "Stream::Plain({:?})", s.peer_addr().ok()),
            Stream::Tls(s) => write!(f, "Stream::Tls({:?})", s.get_ref().0.peer_addr().ok()),
        }
    }
}

impl Stream {
    /// Whether it is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// Separate read and write halves (plain TCP without a lock between them).
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// The reading half of a [`Stream`].
pub enum ReadHalf {
    /// Plain TCP.
    Plain(tokio::net::tcp::OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<tokio_rustls::TlsStream<TcpStream>>),
}

/// The writing half of a [`Stream`].
pub enum WriteHalf {
    /// Plain TCP.
    Plain(tokio::net::tcp::OwnedWriteHalf),
    /// TLS.
    Tls(tokio::io::WriteHalf<tokio_rustls::TlsStream<TcpStream>>),
}

macro_rules! delegate_read {
    ($t:ty, $($v:ident),+) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($t:ty, $($v:ident),+) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_write_vectored(cx, bufs),)+
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $(Self::$v(s) => s.is_write_vectored(),)+
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

delegate_read!(Stream, Plain, Tls);
delegate_write!(Stream, Plain, Tls);
delegate_read!(ReadHalf, Plain, Tls);
delegate_write!(WriteHalf, Plain, Tls);

/// Caps the connections a listener keeps open per peer address
/// (`distributed.comm.limits.connections-per-peer`), so one host cannot take every file
/// descriptor. Cheap to clone (shared counts).
#[derive(Clone, Debug, Default)]
pub struct PeerLimit {
    max: Option<usize>,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct PeerPermit {
    ip: std::net::IpAddr,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl PeerLimit {
    /// At most `max` open connections per peer address (`None`: no limit).
    pub fn new(max: Option<usize>) -> PeerLimit {
        PeerLimit {
            max,
            open: Arc::default(),
        }
    }

    /// The limit the process's configuration sets.
    pub fn configured() -> PeerLimit {
        let max = oxidask_config::global().ok().map_or(Some(1024), |c| {
            c.int("distributed.comm.limits.connections-per-peer")
                .map(|n| n.max(1) as usize)
        });
        PeerLimit::new(max)
    }

    /// A place for a connection from `peer`, or why not (log it with the address).
    pub fn admit(&self, peer: SocketAddr) -> Result<PeerPermit, String> {
        let ip = peer.ip();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if let Some(max) = self.max {
            if *n >= max {
                return Err(format!(
                    "{peer}: {ip} already has {max} connections open (distributed.comm.limits.connections-per-peer)"
                ));
            }
        }
        *n += 1;
        Ok(PeerPermit {
            ip,
            open: self.open.clone(),
        })
    }
}

/// Accepts the next connection `limit` admits. Accept errors (out of file descriptors, ...)
/// back off instead of spinning; a peer over its limit is closed at once. Both are reported
/// through `log`. The permit frees the peer's place when dropped: keep it for the life of the
/// connection.
pub async fn accept_next(
    listener: &tokio::net::TcpListener,
    limit: &PeerLimit,
    log: impl Fn(String),
) -> (TcpStream, SocketAddr, PeerPermit) {
    let mut failures = 0u32;
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => match limit.admit(peer) {
                Ok(permit) => return (tcp, peer, permit),
                Err(why) => log(format!("refused connection from {why}")),
            },
            Err(e) => {
                log(format!("accept failed: {e}"));
                accept_backoff(failures).await;
                failures = failures.saturating_add(1);
            }
        }
    }
}

/// Frame limits the process's configuration sets (`distributed.comm.limits.max-header-bytes`,
/// `max-frame-bytes`, `max-frame-parts`), for connections of clients and workers.
pub fn configured_limits() -> crate::Limits {
    let d = crate::Limits::default();
    let Ok(c) = oxidask_config::global() else {
        return d;
    };
    let size = |k: &str, d: usize| {
        c.size(k)
            .map_or(d, |v| usize::try_from(v).unwrap_or(usize::MAX))
    };
    crate::Limits {
        max_header: size("distributed.comm.limits.max-header-bytes", d.max_header),
        max_parts: c
            .int("distributed.comm.limits.max-frame-parts")
            .map_or(d.max_parts, |v| v.max(0) as usize),
        max_payload: size("distributed.comm.limits.max-frame-bytes", d.max_payload),
    }
}

/// Accept errors (e.g. out of file descriptors) back off instead of spinning: call after a
/// failed `accept` with the number of failures in a row; returns after a delay that doubles
/// from 5 ms up to 1 s.
pub async fn accept_backoff(failures: u32) {
    let ms = 5u64.saturating_mul(1 << failures.min(8)).min(1000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// The environment variable a token may come from (the configuration key
/// `distributed.comm.auth.token`).
pub const TOKEN_ENV: &str = "OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN";

/// Which certificate of the configuration a process presents
/// (`distributed.comm.tls.{scheduler,worker,client}.{cert,key}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    /// A scheduler.
    Scheduler,
    /// A worker.
    Worker,
    /// A client.
    Client,
}

impl Party {
    fn key(self) -> &'static str {
        match self {
            Party::Scheduler => "scheduler",
            Party::Worker => "worker",
            Party::Client => "client",
        }
    }
}

impl Security {
    /// The security the configuration describes for `party`: TLS when
    /// `distributed.comm.tls.ca-file` is set (with `distributed.comm.tls.<party>.cert` and
    /// `.key`), the token `distributed.comm.auth.token`, `distributed.comm.require-encryption`
    /// and the handshake timeout `distributed.comm.timeouts.handshake`.
    pub fn from_config(
        cfg: &oxidask_config::Config,
        party: Party,
    ) -> Result<Security, SecurityError> {
        let role = party.key();
        let cert = cfg.path(&format!("distributed.comm.tls.{role}.cert"));
        let key = cfg.path(&format!("distributed.comm.tls.{role}.key"));
        let versions = TlsVersions::between(
            cfg.string("distributed.comm.tls.min-version"),
            cfg.string("distributed.comm.tls.max-version"),
        );
        let mut s = match cfg.path("distributed.comm.tls.ca-file") {
            Some(ca) => Security::tls_versions(read_credentials(ca, cert, key)?, versions)?,
            None if cert.is_some() || key.is_some() => return Err(SecurityError::NoCa),
            None => Security::plain(),
        };
        if let Some(t) = cfg.string("distributed.comm.auth.token") {
            s = s.with_token(t);
        }
        if let Some(t) = cfg.duration("distributed.comm.timeouts.handshake") {
            s = s.handshake_timeout(t);
        }
        if let Some(t) = cfg.duration("distributed.comm.timeouts.connect") {
            s = s.connect_timeout(t);
        }
        Ok(s.require_encryption(
            cfg.bool("distributed.comm.require-encryption")
                .unwrap_or(false),
        ))
    }

    /// [`Security::from_config`] of the process-wide configuration.
    pub fn configured(party: Party) -> Result<Security, String> {
        let cfg = oxidask_config::global().map_err(|e| e.to_string())?;
        Security::from_config(&cfg, party).map_err(|e| e.to_string())
    }
}

/// The TLS and token options of `oxidask scheduler` and `oxidask worker`.
#[cfg(feature = "cli")]
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SecurityArgs {
    /// The CA certificate (PEM) peers' certificates must be signed by; turns on TLS
    /// (addresses become `tls://`).
    #[arg(long, value_name = "PATH")]
    pub tls_ca_file: Option<PathBuf>,
    /// This process's certificate (PEM), signed by the CA.
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// The key of `--tls-cert` (PEM).
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// A file holding the shared authentication token (default: the
    /// OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN environment variable). Not given on the command
    /// line, where other users could read it.
    #[arg(long, value_name = "PATH")]
    pub auth_token_file: Option<PathBuf>,
    /// Refuse plain TCP connections.
    #[arg(long)]
    pub require_encryption: bool,
}

#[cfg(feature = "cli")]
impl SecurityArgs {
    /// Adds these options to `flags` as the configuration keys they set for `party`
    /// (`--tls-cert` is `distributed.comm.tls.worker.cert` for a worker); the token file is
    /// read here.
    pub fn add_flags(&self, flags: &mut oxidask_config::Flags, party: Party) -> Result<(), String> {
        let role = party.key();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let e = |e: oxidask_config::ConfigError| e.to_string();
        flags
            .set_some(
                "--tls-ca-file",
                "distributed.comm.tls.ca-file",
                path(&self.tls_ca_file),
            )
            .map_err(e)?;
        flags
            .set_some(
                "--tls-cert",
                &format!("distributed.comm.tls.{role}.cert"),
                path(&self.tls_cert),
            )
            .map_err(e)?;
        flags
            .set_some(
                "--tls-key",
                &format!("distributed.comm.tls.{role}.key"),
                path(&self.tls_key),
            )
            .map_err(e)?;
        if let Some(p) = &self.auth_token_file {
            let token = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the token file {}: {e}", p.display()))?;
            flags
                .set(
                    "--auth-token-file",
                    "distributed.comm.auth.token",
                    token.trim(),
                )
                .map_err(e)?;
        }
        if self.require_encryption {
            flags
                .set(
                    "--require-encryption",
                    "distributed.comm.require-encryption",
                    true,
                )
                .map_err(e)?;
        }
        Ok(())
    }
}
