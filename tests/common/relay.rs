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
//! until the one it wants is in flight. The accept loop and the copy
//! threads end when the relay is dropped (checked every 20 ms) or when
//! either side closes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    stop: AtomicBool,
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
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Both);
    });
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
