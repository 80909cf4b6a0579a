//! `cargo xtask bench validate`: the in-process timings of the `validate` bench target (built
//! optimised; the xtask itself runs as a debug build, useless for timing), then `validate` side by
//! side with kubeconform and kube-score on the same bundles — generated at two sizes (4,002 and
//! 40,002 objects in one namespace) and a public chart rendered by helm — as whole processes: CPU
//! time (user + system) and peak memory of each run from the kernel's accounting (`wait4`), the
//! median of five rounds after a warm-up, and the ratios; last, `validate` on the chart
//! directory itself beside `helm template` alone.
//!
//! kubeconform and kube-score are built with `go install` from the Go module proxy into the build
//! cache (`<cache>/bench-tools/<key>/`, keyed by tool, version and Go version) or taken from there.
//! kubeconform needs JSON schemas and there is no internet besides package registries: the bench
//! target generates strict schemas of the bundle's kinds from the `k8s-openapi` types (the ones our
//! own `schema` rule walks) and kubeconform reads them with `-schema-location`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use camunda_conformance_controlplane::cache::Cache;

use crate::artifacts::workspace_root;

const KUBECONFORM: (&str, &str, &str) = (
    "kubeconform",
    "github.com/yannh/kubeconform/cmd/kubeconform",
    "v0.8.0",
);
const KUBE_SCORE: (&str, &str, &str) = (
    "kube-score",
    "github.com/zegl/kube-score/cmd/kube-score",
    "v1.20.0",
);
/// Rounds of each side-by-side run (kube-score takes ~25 s a run on the large bundle).
const RUNS: usize = 5;
/// The bundles the bench target writes, side by side at two sizes and one helm-rendered, and
/// whether kube-score runs on it (it takes more than 7 minutes a run on 40,002 objects).
const INPUTS: [(&str, &str, bool); 3] = [
    (
        "generated, 1,000 Camunda sets (4,002 objects)",
        "bundle-1000.yaml",
        true,
    ),
    (
        "generated, 10,000 Camunda sets (40,002 objects; kube-score left out: minutes a run)",
        "bundle-10000.yaml",
        false,
    ),
    (
        "helm-rendered Operaton chart, 1,000 releases (6,000 objects)",
        "helm-1000.yaml",
        true,
    ),
];

pub fn run() -> Result<()> {
    let root = workspace_root();
    let dir = root.join("target/bench-validate");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut bench = Command::new(&cargo);
    bench
        .current_dir(&root)
        .env("CAMUNDA_CONFORMANCE_BENCH_DIR", &dir)
        .args([
            "bench",
            "--quiet",
            "--package",
            "camunda-conformance",
            "--bench",
            "validate",
        ]);
    // An optimised build from cold and the runs: well within an hour on two cores.
    let status = crate::command::status(
        bench,
        "cargo bench --bench validate",
        Duration::from_secs(3600),
    )?;
    if !status.success() {
        bail!("the validate benchmark failed ({status})");
    }
    let mut build = Command::new(&cargo);
    build.current_dir(&root).args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "camunda-conformance",
        "--bin",
        "camunda-conformance",
    ]);
    if !crate::command::status(build, "cargo build --release", Duration::from_secs(3600))?.success()
    {
        bail!("building the optimised camunda-conformance failed");
    }
    let kubeconform = go_tool(KUBECONFORM)?;
    let kube_score = go_tool(KUBE_SCORE)?;

    let ours = root.join("target/release/camunda-conformance");
    let schema_location = format!(
        "{}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        dir.join("schemas").display()
    );
    for (what, file, with_kube_score) in INPUTS {
        let bundle = dir.join(file);
        let bytes = std::fs::metadata(&bundle)
            .with_context(|| format!("the bench target left no {}", bundle.display()))?
            .len();
        let path = bundle.display().to_string();
        let mut commands: Vec<(&str, Vec<String>)> = vec![
            (
                "camunda-conformance validate",
                vec![ours.display().to_string(), "validate".into(), path.clone()],
            ),
            (
                "kubeconform -strict",
                vec![
                    kubeconform.display().to_string(),
                    "-strict".into(),
                    "-summary".into(),
                    "-schema-location".into(),
                    schema_location.clone(),
                    path.clone(),
                ],
            ),
        ];
        if with_kube_score {
            commands.push((
                "kube-score score",
                vec![kube_score.display().to_string(), "score".into(), path],
            ));
        }
        println!(
            "\n{what}: {} ({:.1} MB), whole processes, {RUNS} rounds after a warm-up",
            bundle.display(),
            bytes as f64 / 1e6
        );
        side_by_side(&commands)?;
    }
    // The chart directory itself: helm's render is part of the run (its CPU and memory count:
    // wait4 includes the children `validate` waited for).
    let chart_txt = dir.join("chart.txt");
    let chart = std::fs::read_to_string(&chart_txt)
        .with_context(|| format!("the bench target left no {}", chart_txt.display()))?;
    let mut lines = chart.lines();
    let (Some(chart), Some(values)) = (lines.next(), lines.next()) else {
        bail!("{} names no chart and values", chart_txt.display());
    };
    println!("\nthe chart directory {chart} with its production values, whole processes, {RUNS} rounds after a warm-up");
    side_by_side(&[
        (
            "camunda-conformance validate <chart>",
            vec![
                ours.display().to_string(),
                "validate".into(),
                chart.to_string(),
                "--values".into(),
                values.to_string(),
            ],
        ),
        (
            "helm template --skip-tests (alone)",
            vec![
                "helm".into(),
                "template".into(),
                "--skip-tests".into(),
                chart.to_string(),
                "--values".into(),
                values.to_string(),
            ],
        ),
    ])?;
    println!(
        "(goal: kubeconform's CPU at least 10× ours, our peak memory at most kubeconform's; kubeconform runs 4 workers, its CPU sums them)"
    );
    Ok(())
}

/// Runs `commands` in rounds and prints each one's median CPU and peak memory with its ratios to
/// the first (ours).
fn side_by_side(commands: &[(&str, Vec<String>)]) -> Result<()> {
    println!(
        "(each round runs every command in turn, so that all see the machine alike): medians, and the range of the round-by-round ratios"
    );
    let runs = measure(commands)?;
    println!(
        "{:<38} {:>10} {:>12} {:>20} {:>20}",
        "command", "CPU s", "peak MB", "CPU vs ours", "memory vs ours"
    );
    for ((name, _), figures) in commands.iter().zip(&runs) {
        let ratio = |of: fn(&Figures) -> f64, digits: usize| {
            let mut ratios: Vec<f64> = figures
                .iter()
                .zip(&runs[0])
                .map(|(theirs, ours)| of(theirs) / of(ours))
                .collect();
            ratios.sort_by(f64::total_cmp);
            format!(
                "{:.digits$}× ({:.digits$}–{:.digits$})",
                median(&ratios),
                ratios[0],
                ratios[ratios.len() - 1]
            )
        };
        let cpu: Vec<f64> = figures.iter().map(|f| f.cpu).collect();
        let peak: Vec<f64> = figures.iter().map(|f| f.peak_kb as f64).collect();
        println!(
            "{name:<38} {:>10.3} {:>12.1} {:>20} {:>20}",
            median_of(cpu),
            median_of(peak) / 1024.0,
            ratio(|f| f.cpu, 1),
            ratio(|f| f.peak_kb as f64, 2)
        );
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Figures {
    /// User + system seconds.
    cpu: f64,
    /// Peak resident set of the process, in KiB.
    peak_kb: i64,
}

/// `RUNS` rounds after one warm-up round, each running every command once in turn: the figures
/// of each command, round by round. The exit status is not judged (kube-score exits 1 on its
/// findings), only that the command ran.
fn measure(commands: &[(&str, Vec<String>)]) -> Result<Vec<Vec<Figures>>> {
    let mut runs = vec![Vec::new(); commands.len()];
    for round in 0..=RUNS {
        for ((name, argv), figures) in commands.iter().zip(&mut runs) {
            let run = run_once(argv).with_context(|| format!("running {name}"))?;
            if round > 0 {
                figures.push(run);
            }
        }
    }
    Ok(runs)
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    median(&values)
}

fn run_once(argv: &[String]) -> Result<Figures> {
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", argv[0]))?;
    let pid = i32::try_from(child.id()).context("a process id fits an i32")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped; both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        bail!(
            "waiting for {}: {}",
            argv[0],
            std::io::Error::last_os_error()
        );
    }
    // Reaped by wait4: the Child handle must not wait again.
    drop(child);
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Figures {
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_kb: usage.ru_maxrss,
    })
}

/// The tool's binary from the build cache, `go install`ed into it first when missing.
fn go_tool((name, package, version): (&str, &str, &str)) -> Result<PathBuf> {
    let go = Command::new("go")
        .arg("version")
        .output()
        .context("`go` is needed to build kubeconform and kube-score (go install)")?;
    let go_version = String::from_utf8_lossy(&go.stdout).trim().to_string();
    let cache = Cache {
        name: "bench-tools",
        key_text: format!("{package}@{version}\n{go_version}\n"),
        files: &[name],
    };
    let dir = cache.ensure(|into: &Path| {
        eprintln!("  {name}: go install {package}@{version}");
        let mut install = Command::new("go");
        install
            .env("GOBIN", into)
            .args(["install", &format!("{package}@{version}")]);
        let status = crate::command::status(
            install,
            &format!("go install {name}"),
            Duration::from_secs(1800),
        )?;
        if !status.success() {
            bail!("go install {package}@{version} failed ({status})");
        }
        Ok(())
    })?;
    Ok(dir.join(name))
}
