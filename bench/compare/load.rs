//! Measuring tools around a phase: `wrk` (requests per second over
//! keep-alive connections), a sampler of a process's resident memory
//! (`VmRSS` every 20 ms), and CPU accounting from `/proc` (the server's
//! CPU seconds and the whole machine's busy share during the phase).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::run;
use crate::servers::WRK;
use crate::{Ctx, Res};

/// `wrk -t2 -cCONNS -dSECSs [-H ...] URL`; returns requests per second.
/// Fails when any answer was not 2xx/3xx or a socket error happened.
pub fn wrk(url: &str, headers: &[String], conns: usize, secs: u64) -> Res<f64> {
    let mut cmd = Command::new(WRK);
    cmd.args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s")]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(url);
    let out = run(&mut cmd, Duration::from_secs(secs + 60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk {url} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    if let Some(bad) = field("Non-2xx or 3xx responses:") {
        return Err(format!(
            "wrk {url}: {bad} answers were not 2xx/3xx:\n{text}"
        ));
    }
    if let Some(errors) = field("Socket errors:") {
        return Err(format!("wrk {url}: socket errors: {errors}\n{text}"));
    }
    field("Requests/sec:")
        .ok_or_else(|| format!("wrk {url}: no Requests/sec line:\n{text}"))?
        .parse::<f64>()
        .ctx("wrk Requests/sec")
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Samples `VmRSS` of `pid` every 20 ms until stopped (or one hour).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(3600);
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                peak = peak.max(status_kib(pid, "VmRSS").unwrap_or(0));
                thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        RssSampler { stop, handle }
    }

    /// Stops sampling; returns the highest `VmRSS` seen, in KiB.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// CPU counters at one moment: the process's and the machine's.
#[derive(Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    proc_ticks: u64,
    busy: u64,
    total: u64,
}

/// What a phase cost: server CPU in cores (1.0 = one core busy all the
/// time) and the machine's busy share (all processes, all cores).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuUse {
    pub server_cores: f64,
    pub machine_busy: f64,
}

impl CpuMark {
    pub fn now(pid: u32) -> CpuMark {
        let proc_ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                // Fields after the `(comm)`: utime is the 12th, stime the 13th.
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0);
        let (busy, total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?;
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3)? + v.get(4)?;
                Some((total - idle, total))
            })
            .unwrap_or((0, 1));
        CpuMark {
            at: Instant::now(),
            proc_ticks,
            busy,
            total,
        }
    }

    pub fn since(&self, pid: u32) -> CpuUse {
        let now = CpuMark::now(pid);
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        CpuUse {
            server_cores: now.proc_ticks.saturating_sub(self.proc_ticks) as f64 / hz / secs,
            machine_busy: now.busy.saturating_sub(self.busy) as f64
                / (now.total.saturating_sub(self.total)).max(1) as f64,
        }
    }
}
