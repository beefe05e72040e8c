//! A TCP relay on loopback that holds back chosen HTTP requests: it sits
//! between one S3 client (one regproxy "instance") and the real Garage, and
//! delays a request that matches a rule (`PUT ` on a key, the bulk delete
//! of a key, the listing of `blobs/`...) for a set time before passing it
//! on. That makes the slow write, the stalled sweep and the late delete of
//! a race happen at a known moment, against the real store. Everything
//! else passes through untouched.
//!
//! Plain HTTP only (the tests' Garage endpoint). Rules can change while it
//! runs; [`Relay::held`] counts requests being held now, so a test can wait
//! until the one it wants is in flight. It also counts what passes
//! ([`Relay::traffic`]: requests by their request line, bytes answered), so
//! a test can measure what an operation costs in store requests. The accept loop and the copy
//! threads end when the relay is dropped (checked every 20 ms) or when
//! either side closes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hold a request for `delay` when a piece of it (as read from the socket)
/// starts with `method` (any, if empty) and contains every one of `parts`.
/// A bulk delete (`POST /?delete`, how `object_store` deletes) names its
/// keys in the body: match it with `""` and `["<Delete", "the/key"]`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    pub parts: Vec<String>,
    pub delay: Duration,
}

struct Shared {
    rules: Mutex<Vec<Rule>>,
    held: AtomicUsize,
    /// Requests held so far (ever).
    matched: AtomicUsize,
    /// Request lines seen (`PUT /bucket/key?... HTTP/1.1`), in order.
    requests: Mutex<Vec<String>>,
    /// Bytes the store answered.
    bytes_down: AtomicU64,
    stop: AtomicBool,
}

/// What passed through a relay so far.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Request lines, in order.
    pub requests: Vec<String>,
    /// Bytes the store answered.
    pub bytes_down: u64,
}

impl Traffic {
    /// What passed since `earlier`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            requests: self.requests[earlier.requests.len().min(self.requests.len())..].to_vec(),
            bytes_down: self.bytes_down - earlier.bytes_down,
        }
    }

    /// Requests whose line starts with `method` and contains `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.starts_with(method) && r.contains(part))
            .count()
    }
}

pub struct Relay {
    /// `http://127.0.0.1:PORT`, to use as the S3 endpoint.
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl Relay {
    /// Relays `127.0.0.1:0` to `target` (`http://host:port`).
    pub fn start(target: &str) -> Relay {
        let upstream = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        listener.set_nonblocking(true).expect("nonblocking accept");
        let shared = Arc::new(Shared {
            rules: Mutex::default(),
            held: AtomicUsize::new(0),
            matched: AtomicUsize::new(0),
            requests: Mutex::default(),
            bytes_down: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(&upstream) {
                            pipe(client, server, s.clone());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Relay {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
        }
    }

    /// Replaces the rules.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.shared.rules.lock().unwrap() = rules;
    }

    /// Requests being held right now.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Requests held since the start.
    pub fn matched(&self) -> usize {
        self.shared.matched.load(Ordering::SeqCst)
    }

    /// What passed so far.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            requests: self.shared.requests.lock().unwrap().clone(),
            bytes_down: self.shared.bytes_down.load(Ordering::SeqCst),
        }
    }

    /// Waits (up to `limit`) until a request is being held; false if none.
    pub fn wait_held(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.held() > 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// Two copy threads: client → server (with the rules), server → client.
fn pipe(client: TcpStream, server: TcpStream, s: Arc<Shared>) {
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut s_read, mut c_write) = (server, client);
    let up = s.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(line) = request_line(&buf[..n]) {
                up.requests.lock().unwrap().push(line);
            }
            if let Some(delay) = delay_for(&up, &buf[..n]) {
                up.held.fetch_add(1, Ordering::SeqCst);
                up.matched.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                up.held.fetch_sub(1, Ordering::SeqCst);
            }
            if s_write.write_all(&buf[..n]).is_err() || up.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let down = s.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            down.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
    });
}

/// The request line a piece starts with, if it starts a request.
fn request_line(piece: &[u8]) -> Option<String> {
    let end = piece.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&piece[..end]).ok()?;
    let method = line.split(' ').next()?;
    let known = ["GET", "HEAD", "PUT", "POST", "DELETE"].contains(&method);
    (known && line.ends_with(" HTTP/1.1")).then(|| line.to_string())
}

/// The delay for a piece of a matching request.
fn delay_for(s: &Shared, chunk: &[u8]) -> Option<Duration> {
    let text = String::from_utf8_lossy(chunk);
    let rules = s.rules.lock().ok()?;
    rules
        .iter()
        .find(|r| text.starts_with(r.method) && r.parts.iter().all(|p| text.contains(p.as_str())))
        .map(|r| r.delay)
}
