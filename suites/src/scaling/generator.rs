//! `scaling.load-generator` on the local backend: the scaling suite's load, sent through the
//! real ingress to real Camunda replicas, must make the replicas burn the CPU that makes the e2e
//! HPA scale out — or, on a machine too busy to give them that much, at least half of the CPU
//! that was left for them. Measured from the kernel's accounting (`/proc`), so the verdict says
//! what the replicas really burned, next to what the machine had.
//!
//! The load stops as soon as the figures over the whole load so far meet the bar, but never
//! before [`MIN_LOAD`]: a stack that reaches it quickly is not kept waiting, one that does not
//! gets the full [`MAX_LOAD`] to get there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::load::{self, LoadTarget, SCALE_OUT_CPU_CORES, SCALING_WORKERS};
use crate::check::{Ctx, Outcome, Verdict};
use crate::target::StopHandle;

/// The shortest load judged: connections are open and the JIT has warmed the request path.
const MIN_LOAD: Duration = Duration::from_secs(4);
/// The longest: a stack that has not met the bar by then fails.
const MAX_LOAD: Duration = Duration::from_secs(15);
/// How often the figures so far are compared with the bar.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// The share of the CPU left for the replicas that they must burn on a busy machine.
const SHARE_OF_AVAILABLE: f64 = 0.5;
/// Below this the load did not reach the replicas, however busy the machine: a busy machine
/// must not lower the bar to nothing (load sent elsewhere also makes "everything else" busy).
const FLOOR_CORES: f64 = 0.3;
/// Errors above this share of the requests fail the check.
const MAX_ERROR_SHARE: f64 = 0.01;

/// CPU figures of one load run, in cores (CPU seconds per wall second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuFigures {
    pub online: f64,
    /// Everything the machine burned.
    pub machine: f64,
    /// The replicas' JVMs.
    pub replicas: f64,
}

impl CpuFigures {
    /// What the replicas could have had: the machine less what everything else burned (the
    /// generator and the ingress included).
    pub fn available(&self) -> f64 {
        (self.online - (self.machine - self.replicas)).max(0.0)
    }

    /// What the replicas must burn: the HPA's scale-out point, or half of what was left for
    /// them when the machine could not give them that much, and never less than the floor.
    pub fn required(&self) -> f64 {
        SCALE_OUT_CPU_CORES
            .min(SHARE_OF_AVAILABLE * self.available())
            .max(FLOOR_CORES)
    }
}

pub(crate) fn judge(stats: &load::LoadStats, cpu: CpuFigures) -> Verdict {
    let figures = format!(
        "{SCALING_WORKERS} workers through the ingress: {stats}; the replicas burned {:.2} cores, {:.2} were left for them ({:.0} online, {:.2} burned by everything else); required {:.2} (the e2e HPA's scale-out point {SCALE_OUT_CPU_CORES}, or {:.0} % of what was left, at least {FLOOR_CORES})",
        cpu.replicas,
        cpu.available(),
        cpu.online,
        cpu.machine - cpu.replicas,
        cpu.required(),
        SHARE_OF_AVAILABLE * 100.0,
    );
    if error_share(stats.requests, stats.errors) > MAX_ERROR_SHARE {
        Verdict::Fail(format!(
            "expected at most {:.0} % errors; {figures}",
            MAX_ERROR_SHARE * 100.0
        ))
    } else if cpu.replicas < cpu.required() {
        Verdict::Fail(format!(
            "expected the load to drive the replicas' CPU; {figures}"
        ))
    } else {
        Verdict::Pass(figures)
    }
}

fn error_share(requests: u64, errors: u64) -> f64 {
    if requests == 0 {
        1.0
    } else {
        errors as f64 / requests as f64
    }
}

/// Do the figures so far already pass? Then the load may stop early.
fn bar_met(requests: u64, errors: u64, cpu: CpuFigures) -> bool {
    error_share(requests, errors) <= MAX_ERROR_SHARE && cpu.replicas >= cpu.required()
}

/// CPU counters at one moment: the replicas' and the machine's, in CPU seconds.
#[derive(Clone, Copy)]
struct CpuReading {
    replicas: f64,
    machine: f64,
}

impl CpuReading {
    fn now(pids: &[u32]) -> Result<Self> {
        Ok(Self {
            replicas: process_cpu(pids)?,
            machine: machine_cpu()?,
        })
    }

    /// The figures from `self` to `later`, over `wall`.
    fn figures_until(self, later: Self, wall: Duration, online: f64) -> CpuFigures {
        let wall = wall.as_secs_f64().max(0.001);
        CpuFigures {
            online,
            machine: (later.machine - self.machine) / wall,
            replicas: (later.replicas - self.replicas) / wall,
        }
    }
}

/// Loads the stack and measures the replicas' processes (their stop handles name the pids).
pub(crate) async fn load_generator(ctx: &Ctx<'_>) -> Outcome {
    let mut pids = Vec::new();
    let mut stopped = Vec::new();
    for replica in &ctx.target.replicas {
        let pid = match &replica.stop {
            Some(StopHandle::Signal { pid }) => *pid,
            Some(StopHandle::SignalAll { pids }) if !pids.is_empty() => pids[0],
            _ => bail!(
                "{}: the local backend measures a replica's CPU through its pid (stop = {{ signal = {{ pid = … }} }})",
                replica.name
            ),
        };
        // A replica an earlier check stopped (shared-survives-stop) is restarting under
        // another pid: the load is measured on the others, and the verdict says so.
        if process_cpu(&[pid]).is_ok() && !zombie(pid) {
            pids.push(pid);
        } else {
            stopped.push(replica.name.as_str());
        }
    }
    if pids.is_empty() {
        bail!(
            "no replica of the target is running (stopped: {})",
            stopped.join(", ")
        );
    }
    let target = LoadTarget::ingress(ctx.target)?;
    let online = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let (stop, live, finished) = (
        AtomicBool::new(false),
        load::Live::default(),
        AtomicBool::new(false),
    );
    let before = CpuReading::now(&pids)?;
    let started = Instant::now();
    let loading = async {
        let stats = load::drive(&target, MAX_LOAD, SCALING_WORKERS, &stop, &live).await;
        finished.store(true, Ordering::Relaxed);
        stats
    };
    let watching = async {
        while !finished.load(Ordering::Relaxed) {
            tokio::time::sleep(SAMPLE_EVERY).await;
            let elapsed = started.elapsed();
            if elapsed < MIN_LOAD {
                continue;
            }
            let Ok(now) = CpuReading::now(&pids) else {
                continue;
            };
            let (requests, errors, _) = live.snapshot();
            if bar_met(requests, errors, before.figures_until(now, elapsed, online)) {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    };
    let (stats, ()) = tokio::join!(loading, watching);
    let stats = stats?;
    let cpu = before.figures_until(CpuReading::now(&pids)?, stats.elapsed, online);
    let mut without = if stopped.is_empty() {
        String::new()
    } else {
        format!(
            "; measured without {}, stopped by an earlier check",
            stopped.join(", ")
        )
    };
    if stop.load(Ordering::Relaxed) {
        without += &format!(
            "; the load stopped once the bar was met (after at least {} s, at most {} s)",
            MIN_LOAD.as_secs(),
            MAX_LOAD.as_secs()
        );
    }
    Ok(match judge(&stats, cpu) {
        Verdict::Pass(message) => Verdict::Pass(message + &without),
        Verdict::Fail(message) => Verdict::Fail(message + &without),
        skip => skip,
    })
}

/// A process that exited but was not reaped yet still has a /proc entry, state `Z`.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// User + system CPU seconds of these processes (`/proc/PID/stat`, fields 14 and 15).
fn process_cpu(pids: &[u32]) -> Result<f64> {
    let mut total = 0.0;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        total += stat_cpu_ticks(&stat).with_context(|| path.clone())? / ticks_per_second();
    }
    Ok(total)
}

fn stat_cpu_ticks(stat: &str) -> Result<f64> {
    // The command name (field 2) may contain spaces; the fields after it start past ')'.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no `)` after the command name")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After ')' the first field is field 3 (state): utime is field 14, stime field 15.
    let ticks = |index: usize| -> Result<f64> {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("field {} is not a number", index + 3))
    };
    Ok(ticks(11)? + ticks(12)?)
}

/// CPU seconds the whole machine spent busy (`/proc/stat`, all but idle and iowait).
fn machine_cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    Ok(busy_ticks(&stat)? / ticks_per_second())
}

fn busy_ticks(proc_stat: &str) -> Result<f64> {
    let line = proc_stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no `cpu` line")?;
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| {
            v.parse::<f64>()
                .context("/proc/stat: a `cpu` field is not a number")
        })
        .collect::<Result<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = values.iter().take(8).sum::<f64>()
        - values.get(3).copied().unwrap_or(0.0)
        - values.get(4).copied().unwrap_or(0.0);
    Ok(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(requests: u64, errors: u64) -> load::LoadStats {
        load::LoadStats {
            requests,
            errors,
            elapsed: MAX_LOAD,
            rate_per_s: requests as f64 / 15.0,
            ..Default::default()
        }
    }

    #[test]
    fn a_quiet_machine_must_reach_the_scale_out_point() {
        let quiet = CpuFigures {
            online: 2.0,
            machine: 1.0,
            replicas: 0.7,
        };
        assert!((quiet.available() - 1.7).abs() < 1e-9);
        assert!((quiet.required() - SCALE_OUT_CPU_CORES).abs() < 1e-9);
        assert!(matches!(judge(&stats(2000, 0), quiet), Verdict::Fail(_)));
        let enough = CpuFigures {
            replicas: 0.9,
            machine: 1.2,
            ..quiet
        };
        assert!(matches!(judge(&stats(2000, 0), enough), Verdict::Pass(_)));
    }

    #[test]
    fn a_busy_machine_asks_for_half_of_what_was_left() {
        // 2 cores, everything else burned 1.1: 0.9 left, 0.45 required.
        let busy = CpuFigures {
            online: 2.0,
            machine: 1.71,
            replicas: 0.61,
        };
        assert!((busy.required() - 0.45).abs() < 1e-9);
        let Verdict::Pass(message) = judge(&stats(1500, 3), busy) else {
            panic!("0.61 of 0.9 left is enough");
        };
        assert!(
            message.contains("the replicas burned 0.61 cores, 0.90 were left"),
            "{message}"
        );
        // Load that went elsewhere keeps "everything else" busy: the floor still holds.
        let elsewhere = CpuFigures {
            online: 2.0,
            machine: 2.0,
            replicas: 0.01,
        };
        assert!((elsewhere.required() - FLOOR_CORES).abs() < 1e-9);
        assert!(matches!(
            judge(&stats(8000, 0), elsewhere),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn the_load_stops_early_only_when_the_figures_so_far_pass() {
        let busy_enough = CpuFigures {
            online: 2.0,
            machine: 1.5,
            replicas: 0.9,
        };
        assert!(bar_met(3000, 0, busy_enough));
        assert!(!bar_met(3000, 100, busy_enough), "errors keep it loading");
        assert!(
            !bar_met(0, 0, busy_enough),
            "no answer yet keeps it loading"
        );
        let idle_replicas = CpuFigures {
            replicas: 0.05,
            ..busy_enough
        };
        assert!(!bar_met(3000, 0, idle_replicas));
        let reading = CpuReading {
            replicas: 10.0,
            machine: 40.0,
        };
        let later = CpuReading {
            replicas: 14.0,
            machine: 46.0,
        };
        let figures = reading.figures_until(later, Duration::from_secs(4), 2.0);
        assert_eq!(figures.replicas, 1.0);
        assert_eq!(figures.machine, 1.5);
    }

    #[test]
    fn errors_fail_the_check() {
        let fine = CpuFigures {
            online: 2.0,
            machine: 1.5,
            replicas: 1.0,
        };
        let Verdict::Fail(message) = judge(&stats(1000, 50), fine) else {
            panic!("5 % errors must fail");
        };
        assert!(
            message.starts_with("expected at most 1 % errors"),
            "{message}"
        );
        assert!(matches!(judge(&stats(0, 0), fine), Verdict::Fail(_)));
    }

    #[test]
    fn proc_files_parse() {
        let stat =
            "4242 (java (camunda)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1500 250 0 0 20 0 40 0";
        assert_eq!(stat_cpu_ticks(stat).unwrap(), 1750.0);
        let proc_stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        assert_eq!(busy_ticks(proc_stat).unwrap(), 161.0);
        assert!(busy_ticks("intr 1 2\n").is_err());
    }
}
