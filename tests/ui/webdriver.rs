//! A small W3C WebDriver client over reqwest, and the chromedriver it
//! talks to: started on a free loopback port, driving Debian's headless
//! Chromium with a fresh profile, stopped by pid (also when a test fails).
//!
//! Chromium processes left by a failed session are found by their
//! profile directory and stopped by pid. Only what the UI tests use: open a URL, find elements by CSS selector,
//! type, click, read text and the page source, take screenshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::common::{self, Proc};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key W3C WebDriver puts an element's id under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A chromedriver process and one browser session in it. Dropping it ends
/// the session (Chromium exits) and stops chromedriver.
pub struct Browser {
    driver: Proc,
    base: String,
    session: Option<String>,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
    _log_dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port (a few tries, in case another
    /// process takes the port first) and opens a headless Chromium.
    pub fn start() -> Browser {
        let chromium = common::require_tool(CHROMIUM, "chromium");
        let driver = common::require_tool(CHROMEDRIVER, "chromium-driver");
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("reqwest client");
        let log_dir = common::temp_dir("regproxy-chromedriver-");
        let mut last = String::new();
        for _ in 0..5 {
            let port = common::free_port();
            let log = log_dir.path().join(format!("chromedriver-{port}.log"));
            let mut cmd = Command::new(&driver);
            cmd.arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut proc = Proc::spawn("chromedriver", &mut cmd);
            let base = format!("http://127.0.0.1:{port}");
            if wait_ready(&runtime, &client, &base, &mut proc) {
                let profile = common::temp_dir("regproxy-chromium-");
                let mut b = Browser {
                    driver: proc,
                    base,
                    session: None,
                    runtime,
                    client,
                    _profile: profile,
                    _log_dir: log_dir,
                };
                b.open_session(&chromium);
                return b;
            }
            last = common::tail_file(&log, 20);
            proc.kill9();
        }
        panic!("chromedriver did not become ready on any of 5 ports; last log:\n{last}");
    }

    fn open_session(&mut self, chromium: &Path) {
        let profile = self._profile.path().display().to_string();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={profile}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = self.call(reqwest::Method::POST, "/session", Some(caps));
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_string();
        self.session = Some(id);
    }

    /// One WebDriver command; panics with the driver's error.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method.clone(), path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// One WebDriver command; the driver's error as text.
    fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = self.client.request(method.clone(), &url);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let (status, v) = self.runtime.block_on(async {
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = r.status();
            let v: Value = r
                .json()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: not JSON: {e}"));
            (status, v)
        });
        if !status.is_success() {
            return Err(format!("{status}: {v}"));
        }
        Ok(v["value"].clone())
    }

    fn s(&self, tail: &str) -> String {
        format!(
            "/session/{}{tail}",
            self.session.as_deref().expect("a session")
        )
    }

    pub fn goto(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            &self.s("/url"),
            Some(json!({"url": url})),
        );
    }

    pub fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, &self.s("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn source(&self) -> String {
        self.call(reqwest::Method::GET, &self.s("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The visible text of the whole page.
    pub fn text(&self) -> String {
        self.text_of("body")
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            reqwest::Method::POST,
            &self.s("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        let v = self.call(
            reqwest::Method::POST,
            &self.s("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array().map_or(0, Vec::len)
    }

    pub fn text_of(&self, css: &str) -> String {
        let e = self.element(css);
        self.call(
            reqwest::Method::GET,
            &self.s(&format!("/element/{e}/text")),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            reqwest::Method::POST,
            &self.s(&format!("/element/{e}/clear")),
            Some(json!({})),
        );
        self.call(
            reqwest::Method::POST,
            &self.s(&format!("/element/{e}/value")),
            Some(json!({"text": text})),
        );
    }

    /// Clicks an element (a page it loads may still be loading after).
    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.call(
            reqwest::Method::POST,
            &self.s(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    /// Waits (bounded) until an element matches `css`; panics with the
    /// page's text otherwise.
    pub fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.count(css) > 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no {css} within 20 s at {}; page text:\n{}",
            self.current_url(),
            self.text()
        );
    }

    /// Waits (bounded) until the first element matching `css` shows
    /// `needle`: after a click that loads a page holding the same element.
    pub fn wait_for_text(&self, css: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let found = self.try_call(
                reqwest::Method::POST,
                &self.s("/element"),
                Some(json!({"using": "css selector", "value": css})),
            );
            let text = found.ok().and_then(|v| {
                let e = v[ELEMENT].as_str()?.to_string();
                let t = self.try_call(
                    reqwest::Method::GET,
                    &self.s(&format!("/element/{e}/text")),
                    None,
                );
                t.ok()?.as_str().map(str::to_string)
            });
            if text.is_some_and(|t| t.contains(needle)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no {needle:?} in {css} within 20 s at {}; page text:\n{}",
            self.current_url(),
            self.text()
        );
    }

    /// Waits (bounded) until the address contains `needle`.
    pub fn wait_for_url(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.current_url().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the address never contained {needle:?}: {}",
            self.current_url()
        );
    }

    /// Saves a screenshot as `target/ui-screenshots/NAME.png`; returns its
    /// path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call(reqwest::Method::GET, &self.s("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            let url = format!("{}/session/{id}", self.base);
            let req = self.client.delete(&url).timeout(Duration::from_secs(20));
            let _ = self.runtime.block_on(async move { req.send().await });
        }
        self.driver.terminate(Duration::from_secs(5));
        kill_leftovers(self._profile.path());
    }
}

/// Chromium processes of this browser's profile still running (when the
/// session could not be ended, e.g. after a failed test): stopped by pid.
fn kill_leftovers(profile: &Path) {
    let needle = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|a| a == needle)
        {
            // SAFETY: kill(2) with a pid read from /proc and a plain signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Polls `/status` until the driver is ready (bounded); false if it exits
/// or stays silent.
fn wait_ready(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    proc: &mut Proc,
) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if proc.try_exit_status().is_some() {
            return false;
        }
        let ready = runtime.block_on(async {
            let r = client
                .get(format!("{base}/status"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            v["value"]["ready"].as_bool()
        });
        if ready == Some(true) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
