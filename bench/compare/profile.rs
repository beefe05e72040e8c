//! `--profile DIR`: records regproxy's CPU samples during each figure's
//! phase in round 1 (`perf record -e cpu-clock -p PID`, the only event the
//! VM offers) and writes `perf report`'s flat profile by library and
//! symbol to `DIR/<figure>.txt`, so "what bounds this figure" comes from
//! a profile. Needs `perf` (Debian `linux-perf`); off by default.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{run, Proc};
use crate::servers::Kind;
use crate::{Ctx, Params, Res};

const PERF: &str = "/usr/bin/perf";

/// A running `perf record` (or nothing when profiling is off).
pub struct Profile {
    running: Option<(Proc, PathBuf)>,
}

impl Profile {
    /// Starts recording `pid` when `--profile` was given, for regproxy in
    /// the first round.
    pub fn start(p: &Params, kind: Kind, round: usize, pid: u32, name: &str) -> Res<Profile> {
        let Some(dir) = p
            .profile
            .as_deref()
            .filter(|_| kind == Kind::Regproxy && round == 0)
        else {
            return Ok(Profile { running: None });
        };
        if !Path::new(PERF).exists() {
            return Err("--profile needs perf: apt-get install -y linux-perf".into());
        }
        std::fs::create_dir_all(dir).ctx(format!("create {}", dir.display()))?;
        let data = dir.join(format!("{name}.data"));
        let mut cmd = Command::new(PERF);
        cmd.args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "999",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let proc = Proc::spawn("perf record", &mut cmd);
        // perf attaches within a moment; the phase is long in comparison.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Profile {
            running: Some((proc, data)),
        })
    }

    /// Stops recording (SIGTERM makes perf write its file) and writes the
    /// flat profile next to the data.
    pub fn finish(self) -> Res<()> {
        let Some((mut proc, data)) = self.running else {
            return Ok(());
        };
        proc.terminate(Duration::from_secs(30));
        let out = run(
            Command::new(PERF)
                .args([
                    "report",
                    "--stdio",
                    "--sort",
                    "dso,sym",
                    "--percent-limit",
                    "0.5",
                    "-i",
                ])
                .arg(&data),
            Duration::from_secs(300),
        );
        let txt = data.with_extension("txt");
        std::fs::write(&txt, &out.stdout).ctx(format!("write {}", txt.display()))?;
        eprintln!("compare:   profile written to {}", txt.display());
        Ok(())
    }
}
