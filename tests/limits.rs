//! Slow, idle and greedy clients are bounded (`limits:` in proxy.yaml):
//! slowloris clients (one header byte per second), idle TLS connections on
//! HTTP/1.1 and HTTP/2, and stalled handshakes are closed after the
//! configured (short, here) timeouts while a normal client is still served;
//! the per-address cap refuses extra connections, logs it, and other
//! addresses are still served; the soft open-file limit is raised at start.
//!
//! No timing is asserted beyond "closed within 5 x the timeout"; every
//! client is bounded in count and time.

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use common::{Proto, Regproxy, TlsServer, PROTOCOLS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Every timeout in these configs.
const T: Duration = Duration::from_secs(2);
/// "Closed in time" means within this many timeouts.
const N: u32 = 5;

const LIMITS: &str = "limits:
  handshake_timeout_secs: 2
  header_read_timeout_secs: 2
  idle_timeout_secs: 2
  http2_keepalive_interval_secs: 60
  http2_keepalive_timeout_secs: 2
  max_connections_per_address: 64
";

/// Reads until the server closes (EOF or an error), up to `N x T`; returns
/// how long that took, or `None` if it is still open.
async fn closed_within<S: AsyncRead + Unpin>(s: &mut S) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let wait = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // e.g. HTTP/2 SETTINGS, PING, GOAWAY
            }
        }
    };
    tokio::time::timeout(T * N, wait)
        .await
        .ok()
        .map(|_| start.elapsed())
}

/// A slowloris client: a TLS connection sending one header byte per second
/// (never finishing the head). Returns whether the server closed it in time.
async fn slowloris(s: &TlsServer) -> bool {
    let mut conn = s.connect_tls(Proto::Http1).await;
    let head = format!(
        "GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Slow: {}\r\n",
        "a".repeat(40)
    );
    let deadline = Instant::now() + T * N;
    let mut buf = [0u8; 1024];
    for byte in head.bytes() {
        if Instant::now() > deadline {
            return false;
        }
        if conn.write_all(&[byte]).await.is_err() || conn.flush().await.is_err() {
            return true;
        }
        // Waits the second between bytes, and sees a close at once.
        match tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => return true, // an answer (408) before the head ended
            Err(_) => {}
        }
    }
    false
}

/// An HTTP/2 connection that sends its preface and SETTINGS, then nothing.
async fn idle_h2(s: &TlsServer) -> Option<Duration> {
    let mut conn = s.connect_tls(Proto::Http2).await;
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .ok()?;
    // An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.ok()?;
    conn.flush().await.ok()?;
    closed_within(&mut conn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_idle_and_stalled_clients_are_closed_while_others_are_served() {
    let s = std::sync::Arc::new(TlsServer::start(LIMITS).await);
    let mut attack = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        attack.push(tokio::spawn(
            async move { ("slowloris", slowloris(&s).await) },
        ));
    }
    for _ in 0..6 {
        let s = s.clone();
        attack.push(tokio::spawn(async move {
            let mut conn = s.connect_tls(Proto::Http1).await;
            ("idle HTTP/1.1", closed_within(&mut conn).await.is_some())
        }));
    }
    for _ in 0..4 {
        let s = s.clone();
        attack.push(tokio::spawn(async move {
            ("idle HTTP/2", idle_h2(&s).await.is_some())
        }));
    }
    for _ in 0..4 {
        let s = s.clone();
        attack.push(tokio::spawn(async move {
            // TCP only: the TLS handshake never starts.
            let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
            ("stalled handshake", closed_within(&mut tcp).await.is_some())
        }));
    }
    // A normal client, on both versions, during the attack.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..3 {
        for proto in PROTOCOLS {
            let r = s
                .client(proto)
                .get(s.url("/v2/"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}, {proto:?}: not served: {e:?}"));
            assert_eq!(r.status(), 200);
            assert_eq!(r.version(), proto.version());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for a in attack {
        let (what, closed) = a.await.expect("attack task");
        assert!(
            closed,
            "a {what} connection was still open after {N} x {T:?}"
        );
    }
}

/// The binary with `limits.max_connections_per_address: 3`, started with a
/// soft open-file limit of 256.
fn capped_server(dir: &std::path::Path) -> Regproxy {
    let certs = dir.join("certs");
    let config = common::write_config(
        dir,
        &format!(
            "tls:\n  dir: {}\nauth:\n  enabled: false\nlimits:\n  max_connections_per_address: 3\n",
            certs.display()
        ),
    );
    let data = dir.join("data");
    Regproxy::start_wrapped(
        &["sh", "-c", "ulimit -Sn 256 && exec \"$0\" \"$@\""],
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--data"),
            data.as_os_str(),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_cap_refuses_extra_connections_and_others_are_served() {
    let dir = common::temp_dir("regproxy-caps-");
    let server = capped_server(dir.path());
    let ca = std::fs::read(dir.path().join("certs/ca.crt")).expect("CA");
    let config = common::rustls_config(&ca, Proto::Http1);
    let connect = || {
        let config = config.clone();
        let addr = server.addr();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
        }
    };
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(
            connect()
                .await
                .unwrap_or_else(|e| panic!("connection {i} within the cap: {e}")),
        );
    }
    assert!(
        connect().await.is_err(),
        "a 4th connection from one address is refused"
    );
    assert!(
        server.wait_for_log("max_connections_per_address", Duration::from_secs(5)),
        "the refusal is logged: {}",
        server.logs()
    );
    // Another address is served.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = other
        .get(format!("https://{}/v2/", server.addr()))
        .send()
        .await
        .expect("127.0.0.2 is served");
    assert_eq!(r.status(), 200);
    // A freed place is usable again (bounded retries: the server notices
    // the close asynchronously).
    drop(held.pop());
    let mut ok = false;
    for _ in 0..50 {
        if connect().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a connection is accepted again after one closed");

    // The soft open-file limit (256 at start) was raised to the hard limit.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[3], fields[4],
        "soft limit raised to the hard one: {line}"
    );
}
