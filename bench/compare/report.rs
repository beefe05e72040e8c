//! The results: each figure's runs for both registries, the best run of
//! each, their ratio, derived rows (fractions of another figure or of a
//! machine limit), and the output as a text table and as JSON under
//! `bench/results/<date>-<commit>.{txt,json}`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde_json::json;

use crate::limits::{Limits, Machine};
use crate::load::CpuUse;
use crate::servers::Kind;
use crate::{Ctx, Params, Res};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub key: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    /// Every run's value, regproxy then Distribution.
    pub regproxy: Vec<f64>,
    pub distribution: Vec<f64>,
    /// CPU use during each run (same order as the values).
    pub regproxy_cpu: Vec<CpuUse>,
    pub distribution_cpu: Vec<CpuUse>,
    /// Anything worth knowing about the row (e.g. errors seen).
    pub note: String,
}

impl Figure {
    pub fn new(key: &str, label: &str, unit: &str, better: Better) -> Figure {
        Figure {
            key: key.into(),
            label: label.into(),
            unit: unit.into(),
            better,
            regproxy: Vec::new(),
            distribution: Vec::new(),
            regproxy_cpu: Vec::new(),
            distribution_cpu: Vec::new(),
            note: String::new(),
        }
    }

    pub fn push(&mut self, kind: Kind, value: f64, cpu: CpuUse) {
        match kind {
            Kind::Regproxy => {
                self.regproxy.push(value);
                self.regproxy_cpu.push(cpu);
            }
            Kind::Distribution => {
                self.distribution.push(value);
                self.distribution_cpu.push(cpu);
            }
        }
    }

    fn best_index(&self, values: &[f64]) -> Option<usize> {
        let cmp = |a: &(usize, &f64), b: &(usize, &f64)| a.1.total_cmp(b.1);
        let it = values.iter().enumerate();
        match self.better {
            Better::Higher => it.max_by(cmp),
            Better::Lower => it.min_by(cmp),
        }
        .map(|(i, _)| i)
    }

    /// The best run: highest rate, or lowest time, memory or latency.
    pub fn best(&self, kind: Kind) -> Option<f64> {
        let v = self.values(kind);
        self.best_index(v).map(|i| v[i])
    }

    fn best_cpu(&self, kind: Kind) -> Option<CpuUse> {
        let (v, c) = match kind {
            Kind::Regproxy => (&self.regproxy, &self.regproxy_cpu),
            Kind::Distribution => (&self.distribution, &self.distribution_cpu),
        };
        self.best_index(v).and_then(|i| c.get(i).copied())
    }

    fn values(&self, kind: Kind) -> &[f64] {
        match kind {
            Kind::Regproxy => &self.regproxy,
            Kind::Distribution => &self.distribution,
        }
    }

    /// The label with its unit and, when it applies, "lower is better".
    fn full_label(&self) -> String {
        let lower = match self.better {
            Better::Higher => "",
            Better::Lower => ", lower is better",
        };
        format!("{} ({}{lower})", self.label, self.unit)
    }

    pub fn ratio(&self) -> Option<f64> {
        let (r, d) = (self.best(Kind::Regproxy)?, self.best(Kind::Distribution)?);
        (d != 0.0).then(|| r / d)
    }
}

pub struct Report {
    pub params: Params,
    pub machine: Machine,
    pub limits: Limits,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
    pub elapsed_secs: f64,
    commit: String,
    date: String,
}

impl Report {
    pub fn new(params: &Params, machine: Machine) -> Report {
        let date = time::OffsetDateTime::now_utc();
        Report {
            params: params.clone(),
            machine,
            limits: Limits::default(),
            figures: Vec::new(),
            notes: Vec::new(),
            elapsed_secs: 0.0,
            commit: git_commit(),
            date: date
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }

    /// A row computed from the best values of other rows: for each
    /// registry `f(kind)`.
    pub fn derived(&mut self, key: &str, label: &str, f: impl Fn(&Report, Kind) -> Option<f64>) {
        let mut fig = Figure::new(key, label, "x", Better::Higher);
        for kind in Kind::BOTH {
            if let Some(v) = f(self, kind) {
                fig.push(kind, v, CpuUse::default());
            }
        }
        self.figures.push(fig);
    }

    /// The rows relative to a machine limit, computed once the limits are
    /// final (see `main`): the monolithic upload against the disk, the
    /// download against nginx.
    pub fn add_limit_rows(&mut self) {
        let mut rows: Vec<(&str, &str, &str, f64)> = vec![
            (
                "mono_vs_disk",
                "2 monolithic upload / disk write+fsync limit",
                "mono_mbps",
                self.limits.disk_fsync_mbps,
            ),
            (
                "download_vs_nginx",
                "4 download / nginx static TLS download",
                "download_mbps",
                self.limits.nginx_tls_mbps,
            ),
        ];
        if self.params.s3 {
            rows.extend([
                (
                    "mono_vs_s3_put",
                    "2 monolithic upload / Garage multipart PUT limit",
                    "mono_mbps",
                    self.limits.s3_put_mbps,
                ),
                (
                    "download_vs_s3_get",
                    "4 download / Garage GET limit",
                    "download_mbps",
                    self.limits.s3_get_mbps,
                ),
            ]);
        }
        for (key, label, of, limit) in rows {
            let mut fig = Figure::new(key, label, "x", Better::Higher);
            for kind in Kind::BOTH {
                if let Some(v) = self.best(of, kind).filter(|_| limit > 0.0) {
                    fig.push(kind, v / limit, CpuUse::default());
                }
            }
            // Placed right after the figure it divides.
            let at = self
                .figures
                .iter()
                .position(|f| f.key == of)
                .map_or(self.figures.len(), |i| i + 1);
            self.figures.insert(at, fig);
        }
    }

    pub fn best(&self, key: &str, kind: Kind) -> Option<f64> {
        self.figures.iter().find(|f| f.key == key)?.best(kind)
    }

    pub fn text(&self) -> String {
        let p = &self.params;
        let m = &self.machine;
        let l = &self.limits;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "regproxy vs CNCF Distribution {} -- commit {} -- {}{}",
            m.distribution_version,
            self.commit,
            self.date,
            if p.quick {
                " -- QUICK MODE (sizes too small to mean anything)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "machine: {} CPU(s) {}, {:.1} GiB RAM, Linux {}, load average at start {}",
            m.cpus, m.cpu_model, m.mem_gib, m.kernel, m.loadavg
        );
        let _ = writeln!(
            s,
            "the clients (this program, wrk, skopeo) run on the same {} cores as the servers",
            m.cpus
        );
        let _ = writeln!(
            s,
            "limits (best of the run's start and end): sha256 {:.0} MB/s (sha2 crate, one core), aes-128-gcm {:.0} MB/s (openssl, one core), \
             disk write+fsync {:.0} MB/s, nginx static TLS download {:.0} MB/s ({})",
            l.sha256_mbps, l.aes_gcm_mbps, l.disk_fsync_mbps, l.nginx_tls_mbps, l.nginx_protocol
        );
        if p.s3 {
            let _ = writeln!(
                s,
                "storage: S3 -- both registries on one Garage 2.5.0 node on loopback (sqlite metadata, \
                 data in the work dir, same cores), a fresh bucket per server start; \
                 Garage alone: multipart PUT {:.0} MB/s, GET {:.0} MB/s (object_store crate, one stream)",
                l.s3_put_mbps, l.s3_get_mbps
            );
        }
        let _ = writeln!(
            s,
            "each figure: {} round(s) of regproxy then Distribution (A B A B), best run shown \
             (highest rate, lowest time/latency/memory); MB = 10^6 bytes; \
             cores = server CPU during the best run (1.0 = one core)\n",
            p.rounds
        );
        let labels: Vec<String> = self.figures.iter().map(Figure::full_label).collect();
        let w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(10);
        let _ = writeln!(
            s,
            "{:<w$} {:>12} {:>12} {:>7} {:>6} {:>6}",
            "figure", "regproxy", "distribution", "r/d", "r cpu", "d cpu"
        );
        let _ = writeln!(s, "{}", "-".repeat(w + 48));
        for (f, label) in self.figures.iter().zip(&labels) {
            let num = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "-".into());
            let cores = |k| {
                f.best_cpu(k)
                    .filter(|c| c.server_cores > 0.0)
                    .map(|c| format!("{:.2}", c.server_cores))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                s,
                "{:<w$} {:>12} {:>12} {:>7} {:>6} {:>6}",
                label,
                num(f.best(Kind::Regproxy)),
                num(f.best(Kind::Distribution)),
                f.ratio()
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_else(|| "-".into()),
                cores(Kind::Regproxy),
                cores(Kind::Distribution),
            );
            if !f.note.is_empty() {
                let _ = writeln!(s, "    note: {}", f.note);
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s);
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        let _ = writeln!(s, "\nrun took {:.0} s", self.elapsed_secs);
        s
    }

    pub fn json(&self) -> serde_json::Value {
        let figures: Vec<_> = self
            .figures
            .iter()
            .map(|f| {
                json!({
                    "key": f.key, "label": f.label, "unit": f.unit, "better": f.better,
                    "regproxy": {"best": f.best(Kind::Regproxy), "runs": f.regproxy, "cpu": f.regproxy_cpu},
                    "distribution": {"best": f.best(Kind::Distribution), "runs": f.distribution, "cpu": f.distribution_cpu},
                    "ratio": f.ratio(), "note": f.note,
                })
            })
            .collect();
        json!({
            "commit": self.commit,
            "date": self.date,
            "quick": self.params.quick,
            "storage": if self.params.s3 { "s3 (garage 2.5.0, one node)" } else { "filesystem" },
            "params": format!("{:?}", self.params),
            "machine": self.machine,
            "limits": self.limits,
            "figures": figures,
            "notes": self.notes,
            "elapsed_secs": self.elapsed_secs,
            "clients_share_the_cores": true,
        })
    }

    /// Writes `<date>-<commit>.txt` and `.json` into `dir`.
    pub fn write(&self, dir: &Path, text: &str) -> Res<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).ctx(format!("create {}", dir.display()))?;
        let day = self.date.get(..10).unwrap_or("unknown-date");
        let commit = self.commit.trim_end_matches("-dirty");
        let store = if self.params.s3 { "-s3" } else { "" };
        let base = dir.join(format!("{day}-{commit}{store}"));
        let txt = base.with_extension("txt");
        let json = base.with_extension("json");
        std::fs::write(&txt, text).ctx(format!("write {}", txt.display()))?;
        let body = serde_json::to_string_pretty(&self.json()).ctx("serialize results")?;
        std::fs::write(&json, body + "\n").ctx(format!("write {}", json.display()))?;
        Ok((txt, json))
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `git rev-parse --short HEAD` of the repository, `-dirty` when src/ or
/// Cargo files have uncommitted changes.
fn git_commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-C", dir])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "src",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    }
}
