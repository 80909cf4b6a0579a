//! `cargo xtask bench e2e`: the local loop's figures against their goals, in each session mode —
//! a cold run (warm build caches) to its report, `--reuse` on the kept stack to its report (and
//! to its exit, which includes waiting for a replica a check stopped), `--down` — each timed
//! from the outside as a user sees it, back to back, over several runs (min / median / max).
//! `--backend node`: the node backend beside the local one ([`node`]).

mod node;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::artifacts::workspace_root;
use crate::selfrun::SelfRun;

#[derive(clap::Args)]
pub struct BenchE2eArgs {
    /// Runs of each figure.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub runs: u16,
    /// `local`: the local loop against its goals. `node`: a full sticky node run (scaling
    /// included) beside a local one: time to the report, peak memory, cold build time.
    #[arg(long, value_enum, default_value_t = BenchBackend::Local)]
    pub backend: BenchBackend,
    /// node: first build everything the node needs into an empty cache folder and time it
    /// (30-40 minutes on 2 cores); without it the cold figures are the build times recorded
    /// when the cache entries in use were built.
    #[arg(long)]
    pub cold: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    Local,
    Node,
}

struct Figure {
    name: String,
    /// None: shown for information.
    goal: Option<Duration>,
    samples: Vec<Duration>,
}

impl Figure {
    fn median(&self) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        sorted[sorted.len() / 2]
    }

    fn met(&self) -> bool {
        self.goal.is_none_or(|goal| self.median() <= goal)
    }
}

/// The bound of one timed run (any of them).
const RUN_BOUND: Duration = Duration::from_secs(600);
/// The last line of the suites' report: `ok: 30 passed, 0 failed, 8 skipped against …`.
const REPORT_MARKER: &str = " skipped against ";

pub fn run(args: &BenchE2eArgs) -> Result<bool> {
    match (args.backend, args.cold) {
        (BenchBackend::Node, _) => return node::run(args),
        (BenchBackend::Local, true) => bail!("--cold is for --backend node"),
        (BenchBackend::Local, false) => {}
    }
    crate::local::refuse_if_kept("the bench")?;
    let root = workspace_root();
    let logs = root.join("target/e2e/bench");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut figures = Vec::new();
    for sessions in ["sticky", "shared-redis"] {
        let mut cold = figure(format!("cold e2e to the report ({sessions})"), Some(60));
        let mut reuse = figure(format!("--reuse to the report ({sessions})"), Some(10));
        let mut reuse_exit = figure(format!("--reuse to its exit ({sessions})"), None);
        let mut down = figure(format!("--down ({sessions})"), Some(5));
        for run in 0..args.runs {
            let log = |what: &str| logs.join(format!("{sessions}-{run}-{what}.log"));
            let base = ["e2e", "--backend", "local", "--sessions", sessions];
            let mut kept = SelfRun::start(&[&base[..], &["--keep"]].concat(), &[], &log("keep"))?;
            cold.samples
                .push(kept.wait_for_line(REPORT_MARKER, RUN_BOUND)?);
            finish(&mut kept, &log("keep"))?;
            let mut again =
                SelfRun::start(&[&base[..], &["--reuse"]].concat(), &[], &log("reuse"))?;
            reuse
                .samples
                .push(again.wait_for_line(REPORT_MARKER, RUN_BOUND)?);
            finish(&mut again, &log("reuse"))?;
            reuse_exit.samples.push(again.started.elapsed());
            let mut stop =
                SelfRun::start(&["e2e", "--backend", "local", "--down"], &[], &log("down"))?;
            finish(&mut stop, &log("down"))?;
            down.samples.push(stop.started.elapsed());
            println!(
                "  {sessions} run {}: cold to report {:.1} s, --reuse to report {:.1} s (exit {:.1} s), --down {:.1} s",
                run + 1,
                cold.samples.last().map_or(0.0, Duration::as_secs_f64),
                reuse.samples.last().map_or(0.0, Duration::as_secs_f64),
                reuse_exit.samples.last().map_or(0.0, Duration::as_secs_f64),
                down.samples.last().map_or(0.0, Duration::as_secs_f64),
            );
        }
        figures.extend([cold, reuse, reuse_exit, down]);
    }
    print!("{}", table(&figures));
    let missed: Vec<&str> = figures
        .iter()
        .filter(|f| !f.met())
        .map(|f| f.name.as_str())
        .collect();
    if missed.is_empty() {
        println!(
            "every figure meets its goal (median over {} runs); logs: {}",
            args.runs,
            logs.display()
        );
        Ok(true)
    } else {
        println!(
            "goal missed: {}; logs: {}",
            missed.join(", "),
            logs.display()
        );
        Ok(false)
    }
}

fn figure(name: String, goal_s: Option<u64>) -> Figure {
    Figure {
        name,
        goal: goal_s.map(Duration::from_secs),
        samples: Vec::new(),
    }
}

/// Waits for a timed run's exit; a run that fails makes its figure meaningless.
fn finish(run: &mut SelfRun, log: &Path) -> Result<()> {
    let status = run.wait_exit(RUN_BOUND)?;
    if !status.success() {
        bail!(
            "{} failed ({status}); its output: {}",
            run.what,
            log.display()
        );
    }
    Ok(())
}

fn table(figures: &[Figure]) -> String {
    let seconds = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let mut out = format!(
        "\n{:<38} {:>9} {:>9} {:>9} {:>9}  verdict\n",
        "figure", "min", "median", "max", "goal"
    );
    for f in figures {
        let (min, max) = (
            f.samples.iter().min().copied().unwrap_or_default(),
            f.samples.iter().max().copied().unwrap_or_default(),
        );
        out += &format!(
            "{:<38} {:>9} {:>9} {:>9} {:>9}  {}\n",
            f.name,
            seconds(min),
            seconds(f.median()),
            seconds(max),
            f.goal.map_or("-".into(), |g| format!("≤ {}", seconds(g))),
            match (f.goal, f.met()) {
                (None, _) => "(information)",
                (Some(_), true) => "met",
                (Some(_), false) => "MISSED",
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_judges_the_median_against_the_goal() {
        let ms = Duration::from_millis;
        let quick = Figure {
            name: "--reuse (sticky)".into(),
            goal: Some(Duration::from_secs(10)),
            samples: vec![ms(7_000), ms(12_000), ms(8_000)],
        };
        let slow = Figure {
            name: "--down (sticky)".into(),
            goal: Some(Duration::from_secs(5)),
            samples: vec![ms(6_000), ms(5_500), ms(9_000)],
        };
        let shown = Figure {
            name: "--reuse to its exit (sticky)".into(),
            goal: None,
            samples: vec![ms(30_000)],
        };
        assert!(quick.met() && !slow.met() && shown.met());
        let text = table(&[quick, slow, shown]);
        assert!(
            text.contains("--reuse (sticky)                           7.0 s     8.0 s    12.0 s  ≤ 10.0 s  met"),
            "{text}"
        );
        assert!(text.contains("6.0 s     9.0 s   ≤ 5.0 s  MISSED"), "{text}");
        assert!(text.contains("30.0 s         -  (information)"), "{text}");
    }
}
