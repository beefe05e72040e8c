//! `cargo bench --bench compare`: regproxy side by side with CNCF
//! Distribution 2.8.2 on loopback, in one run, alternating between the two
//! (A B A B), with the machine's limits measured in the same run.
//!
//! Options (after `--`): `--quick` (small sizes, well under a minute),
//! `--rounds N` (A B pairs per figure, default 2), `--out DIR` (where the
//! `<date>-<commit>.{txt,json}` results go; default `bench/results` for a
//! full run, nowhere for `--quick`), `--work DIR` (where data directories
//! live; its filesystem is the one measured; default the system temp dir),
//! `--profile DIR` (perf profiles of regproxy's phases in round 1),
//! `--s3` (both registries store in one Garage 2.5 node on loopback, a
//! fresh bucket per server start, instead of a data directory: figures 1-4,
//! 6 and 7 with smaller sizes, and the store's own PUT/GET speed as the
//! limit; results go to `<date>-<commit>-s3.{txt,json}`).
//!
//! `cargo test` runs this binary without `--bench`: then it runs the quick
//! mode against the debug build and writes no results, so the benchmark
//! cannot rot; its byte checks must pass, its timings are never asserted.
//!
//! This file owns the order of the run; each figure lives in its own module.

#[path = "../../tests/common/mod.rs"]
#[allow(dead_code, unused_imports, clippy::all)]
mod common;

mod client;
mod data;
mod figures;
mod limits;
mod load;
mod nginx;
mod ops;
mod profile;
mod report;
mod servers;
mod skopeo;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use report::Report;
use servers::Setup;

/// A benchmark error: what failed, with its cause. The run stops, every
/// started process is stopped by its guard, and the exit code is 1.
pub type Res<T> = Result<T, String>;

/// Adds context to an error.
pub trait Ctx<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl std::fmt::Display) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Sizes and durations of one run.
#[derive(Debug, Clone)]
pub struct Params {
    pub quick: bool,
    /// `--s3`: on a Garage node instead of the filesystem.
    pub s3: bool,
    pub rounds: usize,
    /// Figure 1: concurrent monolithic uploads and the size of each.
    pub concurrent: usize,
    pub concurrent_size: u64,
    /// Figures 2-4 (and the disk and nginx limits): one large blob.
    pub big_size: u64,
    pub chunk_size: u64,
    /// Figures 5-6: wrk duration and connections.
    pub wrk_secs: u64,
    pub wrk_conns: usize,
    /// Figure 7: layers of the skopeo image.
    pub layers: usize,
    pub layer_size: usize,
    /// Figure 8: trickling uploads, their duration and the probes.
    pub trickles: usize,
    pub trickle_secs: u64,
    pub probes: usize,
    /// `--profile DIR`: perf profiles of regproxy's phases in round 1.
    pub profile: Option<PathBuf>,
}

const MIB: u64 = 1024 * 1024;

impl Params {
    fn full(rounds: usize) -> Params {
        Params {
            quick: false,
            s3: false,
            rounds,
            concurrent: 32,
            concurrent_size: 256 * MIB,
            big_size: 512 * MIB,
            chunk_size: 16 * MIB,
            wrk_secs: 5,
            wrk_conns: 32,
            layers: 8,
            layer_size: 16 * MIB as usize,
            trickles: 1000,
            trickle_secs: 20,
            probes: 200,
            profile: None,
        }
    }

    fn quick(rounds: usize) -> Params {
        Params {
            quick: true,
            s3: false,
            rounds,
            concurrent: 4,
            concurrent_size: 4 * MIB,
            big_size: 4 * MIB,
            chunk_size: MIB,
            wrk_secs: 1,
            wrk_conns: 8,
            layers: 2,
            layer_size: 256 * 1024,
            trickles: 50,
            trickle_secs: 3,
            probes: 20,
            profile: None,
        }
    }
}

impl Params {
    /// `--s3` full mode: a quarter of the filesystem sizes (one Garage node
    /// on the same two cores moves a few hundred MB/s at best), the same
    /// skopeo image.
    fn s3(rounds: usize) -> Params {
        Params {
            s3: true,
            concurrent: 8,
            concurrent_size: 64 * MIB,
            big_size: 256 * MIB,
            ..Params::full(rounds)
        }
    }
}

struct Options {
    params: Params,
    out: Option<PathBuf>,
    work: Option<PathBuf>,
}

fn parse_args() -> Res<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test` does not: then this is
    // the quick self-check.
    let under_test = !args.iter().any(|a| a == "--bench");
    let mut quick = under_test;
    let mut rounds = None;
    let mut out = None;
    let mut work = None;
    let mut profile = None;
    let mut s3 = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--quick" => quick = true,
            "--s3" => s3 = true,
            "--rounds" => {
                let n = it.next().ok_or("--rounds needs a number")?;
                rounds = Some(n.parse::<usize>().ctx("--rounds")?.clamp(1, 10));
            }
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a directory")?)),
            "--work" => work = Some(PathBuf::from(it.next().ok_or("--work needs a directory")?)),
            "--profile" => {
                profile = Some(PathBuf::from(
                    it.next().ok_or("--profile needs a directory")?,
                ))
            }
            // Filters and flags `cargo test` passes on: not ours.
            _ if under_test => {}
            other => {
                return Err(format!(
                    "unknown argument `{other}`\nhint: cargo bench --bench compare -- \
                     [--quick] [--s3] [--rounds N] [--out DIR] [--work DIR] [--profile DIR]"
                ))
            }
        }
    }
    let mut params = if quick {
        Params {
            s3,
            ..Params::quick(rounds.unwrap_or(1))
        }
    } else if s3 {
        Params::s3(rounds.unwrap_or(2))
    } else {
        Params::full(rounds.unwrap_or(2))
    };
    params.profile = profile;
    if out.is_none() && !quick {
        out = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results"));
    }
    Ok(Options { params, out, work })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Res<()> {
    let opts = parse_args()?;
    let p = opts.params.clone();
    let started = Instant::now();
    servers::check_tools()?;
    servers::raise_fd_limit()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ctx("start the tokio runtime")?;

    let setup = Setup::new(opts.work.as_deref(), p.s3)?;
    let mut report = Report::new(&p, limits::machine());
    eprintln!(
        "compare: {} mode{}, {} round(s), regproxy {}, work dir {}",
        if p.quick { "quick" } else { "full" },
        if p.s3 { " on S3 (one Garage node)" } else { "" },
        p.rounds,
        servers::regproxy_bin().display(),
        setup.root().display()
    );
    eprintln!("compare: clients run on the same cores as the servers");

    report.limits = limits::measure(&rt, &setup, &p)?;
    figures::run_all(&rt, &setup, &p, &mut report)?;
    // Measured again at the end; the best of the two is kept (the derived
    // rows "/ limit" are computed when the table is printed).
    report.limits = report.limits.best_of(&limits::measure(&rt, &setup, &p)?);
    report.add_limit_rows();

    report.elapsed_secs = started.elapsed().as_secs_f64();
    let text = report.text();
    println!("{text}");
    if let Some(dir) = opts.out {
        let (txt, json) = report.write(&dir, &text)?;
        eprintln!(
            "compare: results written to {} and {}",
            txt.display(),
            json.display()
        );
    }
    Ok(())
}
