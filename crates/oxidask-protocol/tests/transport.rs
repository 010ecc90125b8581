//! TLS and token authentication on a real loopback listener: the right credentials get
//! through; a wrong CA, a missing or expired certificate, the wrong scheme either way, a
//! wrong or missing token and a silent peer are each refused with a clear error — and the
//! listener keeps serving the next peer.

use std::time::Duration;

use oxidask_protocol::transport::{Security, TemporaryCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A listener that accepts through `security` and echoes one 4-byte message per connection;
/// every refusal is reported on the returned channel.
async fn echo_server(security: Security) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let security = security.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match security.accept(tcp, peer).await {
                    Ok(mut s) => {
                        let mut buf = [0u8; 4];
                        if s.read_exact(&mut buf).await.is_ok() {
                            let _ = s.write_all(&buf).await;
                            let _ = s.flush().await;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(e.to_string());
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn echo(security: &Security, address: &str) -> Result<bool, String> {
    let mut s = security.connect(address).await.map_err(|e| e.to_string())?;
    s.write_all(b"ping").await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    assert_eq!(&buf, b"ping");
    Ok(s.is_tls())
}

async fn refusal(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the listener reports the refusal")
        .expect("the listener is alive")
}

#[tokio::test]
async fn tls_with_the_clusters_credentials_connects_and_others_are_refused() {
    let ca = TemporaryCa::new().unwrap();
    let good = Security::tls(ca.issue().unwrap()).unwrap();
    let (addr, mut refusals) = echo_server(good.clone()).await;
    let tls_addr = format!("tls://{addr}");
    assert_eq!(echo(&good, &tls_addr).await, Ok(true));
    // A bare host:port means this side's scheme.
    assert_eq!(echo(&good, &addr).await, Ok(true));

    // A certificate from another CA: the client refuses the server's certificate, and the
    // server refuses the client's.
    let stranger = Security::temporary().unwrap();
    let e = echo(&stranger, &tls_addr).await.unwrap_err();
    assert!(e.contains("TLS handshake") && e.contains("same CA"), "{e}");
    let r = refusal(&mut refusals).await;
    assert!(
        r.contains("127.0.0.1") && r.contains("TLS handshake failed"),
        "{r}"
    );

    // The right CA but no certificate of its own: refused by the listener.
    let mut anonymous = ca.issue().unwrap();
    anonymous.cert = None;
    anonymous.key = None;
    let anonymous = Security::tls(anonymous).unwrap();
    let e = echo(&anonymous, &tls_addr).await.unwrap_err();
    let r = refusal(&mut refusals).await;
    assert!(r.contains("TLS handshake failed"), "{r}");
    assert!(!e.is_empty());

    // An expired certificate signed by the right CA: refused.
    let expired = Security::tls(ca.issue_expired().unwrap()).unwrap();
    assert!(echo(&expired, &tls_addr).await.is_err());
    let r = refusal(&mut refusals).await;
    assert!(r.contains("TLS handshake failed"), "{r}");

    // Plain TCP against the TLS port: a clear error on both sides.
    let e = echo(&Security::plain(), &format!("tcp://{addr}"))
        .await
        .unwrap_err();
    assert!(e.contains("tls://") || e.contains("TLS"), "{e}");
    let r = refusal(&mut refusals).await;
    assert!(r.contains("TLS handshake failed"), "{r}");

    // A tls:// address without credentials is refused before connecting.
    let e = echo(&Security::plain(), &tls_addr).await.unwrap_err();
    assert!(
        e.contains("no TLS credentials") && e.contains("--tls-ca-file"),
        "{e}"
    );

    // Still serving the cluster's own.
    assert_eq!(echo(&good, &tls_addr).await, Ok(true));
}

#[tokio::test]
async fn a_tls_client_on_a_plain_port_is_told_so() {
    let (addr, mut refusals) = echo_server(Security::plain()).await;
    let tls = Security::temporary().unwrap();
    let e = echo(&tls, &format!("tls://{addr}")).await.unwrap_err();
    assert!(e.contains("TLS handshake"), "{e}");
    let r = refusal(&mut refusals).await;
    assert!(r.contains("a TLS client on this plain tcp:// port"), "{r}");
    assert_eq!(echo(&Security::plain(), &addr).await, Ok(false));
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let server = Security::plain().with_token("open sesame");
    let (addr, mut refusals) = echo_server(server.clone()).await;
    assert_eq!(echo(&server, &addr).await, Ok(false));

    let e = echo(&Security::plain().with_token("wrong"), &addr)
        .await
        .unwrap_err();
    assert!(e.contains("refused the authentication token"), "{e}");
    let r = refusal(&mut refusals).await;
    assert!(
        r.contains("wrong authentication token") && r.contains("127.0.0.1"),
        "{r}"
    );
    assert!(!r.contains("wrong\""), "the token is not logged: {r}");

    let e = echo(&Security::plain(), &addr).await.unwrap_err();
    assert!(e.contains("requires an authentication token"), "{e}");
    assert!(refusal(&mut refusals)
        .await
        .contains("no authentication token"));

    // Token and TLS together.
    let both = Security::temporary().unwrap().with_token("t");
    let (addr, _) = echo_server(both.clone()).await;
    assert_eq!(echo(&both, &format!("tls://{addr}")).await, Ok(true));
    assert!(
        !format!("{both:?}").contains("\"t\""),
        "Debug hides the token"
    );
}

#[tokio::test]
async fn a_silent_or_garbage_speaking_peer_is_dropped_and_others_served() {
    let server = Security::plain().handshake_timeout(Duration::from_millis(300));
    let (addr, mut refusals) = echo_server(server.clone()).await;
    // Slow loris: connect, send two bytes, then nothing.
    let mut loris = tokio::net::TcpStream::connect(&addr).await.unwrap();
    loris.write_all(b"OX").await.unwrap();
    // Served meanwhile.
    assert_eq!(echo(&server, &addr).await, Ok(false));
    let r = refusal(&mut refusals).await;
    assert!(r.contains("no handshake within"), "{r}");
    // The listener closed the silent connection.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), loris.read(&mut buf))
        .await
        .expect("closed, not left hanging")
        .unwrap_or(0);
    assert_eq!(n, 0);

    // Garbage, and a declared token length beyond the limit.
    let mut g = tokio::net::TcpStream::connect(&addr).await.unwrap();
    g.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(refusal(&mut refusals).await.contains("not an oxidask peer"));
    let mut big = tokio::net::TcpStream::connect(&addr).await.unwrap();
    big.write_all(b"OXDK\x01\xff\xff").await.unwrap();
    assert!(refusal(&mut refusals).await.contains("token"));
    assert_eq!(echo(&server, &addr).await, Ok(false));
}

#[tokio::test]
async fn encryption_can_be_required() {
    let strict = Security::plain().require_encryption(true);
    let e = strict.connect("tcp://127.0.0.1:1").await.unwrap_err();
    assert!(e.to_string().contains("encryption is required"), "{e}");
}

#[test]
fn credentials_load_from_files_and_bad_files_are_named() {
    let dir = std::env::temp_dir().join(format!("oxidask-tls-{}", std::process::id()));
    let files = Security::temporary()
        .unwrap()
        .write_files(&dir)
        .unwrap()
        .unwrap();
    let s =
        Security::tls_from_files(&files.ca, files.cert.as_deref(), files.key.as_deref()).unwrap();
    assert!(s.is_tls());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(files.key.as_ref().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }
    let e = Security::tls_from_files(&dir.join("missing.pem"), None, None).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
    std::fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
    let e = Security::tls_from_files(&dir.join("junk.pem"), None, None).unwrap_err();
    assert!(
        e.to_string().contains("junk.pem") && e.to_string().contains("BEGIN CERTIFICATE"),
        "{e}"
    );
    let e = Security::tls_from_files(&files.ca, files.cert.as_deref(), None).unwrap_err();
    assert!(e.to_string().contains("--tls-key"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tls_versions_are_as_configured() {
    use oxidask_protocol::transport::TlsVersions;
    let creds = TemporaryCa::new().unwrap().issue().unwrap();
    let only13 =
        Security::tls_versions(creds.clone(), TlsVersions::between(Some("1.3"), None)).unwrap();
    let only12 =
        Security::tls_versions(creds.clone(), TlsVersions::between(None, Some("1.2"))).unwrap();
    let (addr, mut refusals) = echo_server(only13.clone()).await;
    assert_eq!(echo(&only13, &format!("tls://{addr}")).await, Ok(true));
    assert!(
        echo(&only12, &format!("tls://{addr}")).await.is_err(),
        "1.2 against a 1.3-only listener"
    );
    assert!(refusal(&mut refusals)
        .await
        .contains("TLS handshake failed"));
    assert!(Security::tls_versions(creds, TlsVersions::between(Some("1.3"), Some("1.2"))).is_err());
}

#[test]
fn connections_per_peer_are_capped_and_freed() {
    use oxidask_protocol::transport::PeerLimit;
    let limit = PeerLimit::new(Some(2));
    let a: std::net::SocketAddr = "10.0.0.1:1000".parse().unwrap();
    let b: std::net::SocketAddr = "10.0.0.2:1000".parse().unwrap();
    let p1 = limit.admit(a).unwrap();
    let _p2 = limit.admit(a).unwrap();
    let e = limit.admit(a).unwrap_err();
    assert!(
        e.contains("10.0.0.1") && e.contains("connections-per-peer"),
        "{e}"
    );
    let _other = limit.admit(b).expect("another address has its own count");
    drop(p1);
    let _p3 = limit.admit(a).expect("a closed connection frees its place");
    assert!(PeerLimit::new(None).admit(a).is_ok());
}
