//! `cargo xtask bench e2e --backend node`: the node backend beside the local one — a full sticky
//! run to its report (scaling included) and to its exit, the peak memory sampled while it runs,
//! and the cold build time of what the node needs, each figure saying how it was measured.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::chrono::{DateTime, Utc};

use super::{finish, table, BenchE2eArgs, Figure, REPORT_MARKER};
use crate::artifacts::workspace_root;
use crate::selfrun::SelfRun;

/// A node run to its report: the goal of issue 18.
const NODE_REPORT_GOAL: Duration = Duration::from_secs(240);
/// The bound of one timed run of either backend (a node run includes its teardown).
const RUN_BOUND: Duration = Duration::from_secs(1200);
/// Between two memory samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What one backend's runs measured.
struct Side {
    report: Figure,
    exit: Figure,
    /// The largest sample over every run.
    peak: Memory,
    /// Cache entries the runs used: folder → name.
    entries: BTreeMap<PathBuf, String>,
}

impl Side {
    fn new(backend: &str, goal: Option<Duration>) -> Self {
        Side {
            report: Figure {
                name: format!("{backend}: sticky run to the report"),
                goal,
                samples: Vec::new(),
            },
            exit: Figure {
                name: format!("{backend}: sticky run to its exit"),
                goal: None,
                samples: Vec::new(),
            },
            peak: Memory::default(),
            entries: BTreeMap::new(),
        }
    }
}

/// One memory sample, in bytes: the stack's containers (the node's memory cgroup) and the
/// processes on the host (the node's own, or the local stack's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub pods: u64,
    pub processes: u64,
}

impl Memory {
    fn total(self) -> u64 {
        self.pods + self.processes
    }
}

pub fn run(args: &BenchE2eArgs) -> Result<bool> {
    crate::local::refuse_if_kept("the bench")?;
    if crate::node::kept_state_file().exists() {
        bail!("a kept node runs: stop it first with `cargo xtask e2e --backend node --down`");
    }
    let logs = workspace_root().join("target/e2e/bench-node");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let cold = if args.cold {
        Some(cold_build(&logs)?)
    } else {
        None
    };
    // Both runs build the CLI first; built here, neither figure holds a rebuild of it.
    crate::conformance::build_cli()?;
    let mut local = Side::new("local", None);
    let mut node = Side::new("node", Some(NODE_REPORT_GOAL));
    for run in 0..args.runs {
        for (side, backend) in [(&mut local, Sampled::Local), (&mut node, Sampled::Node)] {
            let name = backend.name();
            let log = logs.join(format!("{name}-{run}.log"));
            timed_run(side, backend, &log)?;
            println!(
                "  {name} run {}: to the report {:.1} s, to its exit {:.1} s, peak memory {}",
                run + 1,
                side.report
                    .samples
                    .last()
                    .map_or(0.0, Duration::as_secs_f64),
                side.exit.samples.last().map_or(0.0, Duration::as_secs_f64),
                memory_text(side.peak, backend)
            );
        }
    }
    let figures = [local.report, node.report, local.exit, node.exit];
    print!("{}", table(&figures));
    println!(
        "\npeak memory (sampled every {} s while the run went on, the largest sample):",
        SAMPLE_EVERY.as_secs()
    );
    println!(
        "  local: {} (sum of the RSS of the stack's processes: PostgreSQL, Redis, twemproxy, nginx, Prometheus, the Camunda JVMs)",
        gib(local.peak.total())
    );
    println!(
        "  node:  {} = pods {} (the node's memory cgroup {}: usage less inactive file cache, as the kubelet counts a working set) + the node's own processes {} (RSS of every process in network namespace {} outside the pods: control plane, containerd and its shims, kubelet, kube-proxy)",
        gib(node.peak.total()),
        gib(node.peak.pods),
        crate::node::cluster::CGROUP_ROOT,
        gib(node.peak.processes),
        crate::node::net::NETNS
    );
    println!("\ncold build time (what a first run builds before it starts anything):");
    match &cold {
        Some(cold) => print!("{cold}"),
        None => {
            let mut entries = local.entries.clone();
            entries.extend(node.entries.clone());
            print!("{}", recorded_builds(&entries));
        }
    }
    let met = figures.iter().all(Figure::met);
    println!(
        "\n{}; logs: {}",
        if met {
            "every figure meets its goal"
        } else {
            "goal missed (see the table)"
        },
        logs.display()
    );
    Ok(met)
}

#[derive(Clone, Copy)]
enum Sampled {
    Local,
    Node,
}

impl Sampled {
    fn name(self) -> &'static str {
        match self {
            Sampled::Local => "local",
            Sampled::Node => "node",
        }
    }
}

fn memory_text(memory: Memory, backend: Sampled) -> String {
    match backend {
        Sampled::Local => gib(memory.total()),
        Sampled::Node => format!(
            "{} (pods {}, node processes {})",
            gib(memory.total()),
            gib(memory.pods),
            gib(memory.processes)
        ),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// One full sticky run of `backend`, timed to its report and its exit, memory sampled meanwhile.
fn timed_run(side: &mut Side, backend: Sampled, log: &Path) -> Result<()> {
    let mut run = SelfRun::start(&["e2e", "--backend", backend.name()], &[], log)?;
    let pid = run.pid();
    let stop = AtomicBool::new(false);
    let (outcome, peak) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = Memory::default();
            while !stop.load(Ordering::Relaxed) {
                let now = match backend {
                    Sampled::Local => Memory {
                        pods: 0,
                        processes: local_stack_rss(pid),
                    },
                    Sampled::Node => node_memory(),
                };
                if now.total() > peak.total() {
                    peak = now;
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            peak
        });
        let outcome = run
            .wait_for_line(REPORT_MARKER, RUN_BOUND)
            .and_then(|report| {
                finish(&mut run, log)?;
                Ok((report, run.started.elapsed()))
            });
        stop.store(true, Ordering::Relaxed);
        (outcome, sampler.join().unwrap_or_default())
    });
    let (report, exit) = outcome?;
    side.report.samples.push(report);
    side.exit.samples.push(exit);
    if peak.total() > side.peak.total() {
        side.peak = peak;
    }
    side.entries.extend(cache_entries(&run.seen));
    Ok(())
}

/// The cache entries a run used, from its `NAME: cached, nothing rebuilt (FOLDER, verified …)`
/// lines.
fn cache_entries(lines: &[String]) -> BTreeMap<PathBuf, String> {
    lines
        .iter()
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(": cached, nothing rebuilt (")?;
            let (dir, _) = rest.split_once(", verified")?;
            Some((PathBuf::from(dir), name.to_string()))
        })
        .collect()
}

/// pid → (parent pid, resident bytes) of every process.
fn processes() -> BTreeMap<i32, (i32, u64)> {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: the fields follow the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        let rss = std::fs::read_to_string(entry.path().join("statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        out.insert(pid, (ppid, rss * page));
    }
    out
}

/// The local stack's memory: every process under the xtask run `root`, less xtask itself and
/// the conformance CLI (the harness, not the stack).
fn local_stack_rss(root: i32) -> u64 {
    let all = processes();
    let mut under: BTreeSet<i32> = BTreeSet::from([root]);
    // Parents are found before children in a few passes (pids are not ordered by ancestry).
    loop {
        let before = under.len();
        for (pid, (ppid, _)) in &all {
            if under.contains(ppid) {
                under.insert(*pid);
            }
        }
        if under.len() == before {
            break;
        }
    }
    under
        .iter()
        .filter(|pid| **pid != root && !is_harness(**pid))
        .filter_map(|pid| all.get(pid).map(|(_, rss)| rss))
        .sum()
}

fn is_harness(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim().starts_with("camunda-confor"))
}

/// The node now: its memory cgroup's working set, and the RSS of the processes in its network
/// namespace that are not in a pod. Zero while the node does not run.
pub fn node_memory() -> Memory {
    let cgroup = Path::new("/sys/fs/cgroup/memory")
        .join(crate::node::cluster::CGROUP_ROOT.trim_start_matches('/'));
    let pods = working_set(&cgroup).unwrap_or(0);
    let Ok(netns) = std::fs::metadata(Path::new("/run/netns").join(crate::node::net::NETNS)) else {
        return Memory { pods, processes: 0 };
    };
    let wanted = format!("net:[{}]", netns.ino());
    let processes = processes()
        .into_iter()
        .filter(|(pid, _)| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.to_string_lossy() == wanted)
                && !in_pod_cgroup(*pid)
        })
        .map(|(_, (_, rss))| rss)
        .sum();
    Memory { pods, processes }
}

/// `memory.usage_in_bytes` less `total_inactive_file` of a cgroup v1 memory folder.
fn working_set(dir: &Path) -> Option<u64> {
    let usage: u64 = std::fs::read_to_string(dir.join("memory.usage_in_bytes"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    let inactive = stat
        .lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// Whether the process is accounted to the node's memory cgroup (a container of a pod).
fn in_pod_cgroup(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|text| {
        text.lines().any(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
            controllers.is_some_and(|c| c.split(',').any(|c| c == "memory"))
                && path.is_some_and(|p| p.starts_with(crate::node::cluster::CGROUP_ROOT))
        })
    })
}

/// How long an entry took to build and when it was done, and how that is known.
fn build_of(dir: &Path) -> Option<(f64, DateTime<Utc>, &'static str)> {
    let at = |secs: u64| DateTime::<Utc>::from_timestamp(i64::try_from(secs).ok()?, 0);
    if let Some((seconds, finished)) = camunda_conformance_controlplane::cache::build_record(dir) {
        return Some((seconds, at(finished)?, "recorded"));
    }
    // Entries built before builds were recorded: the build folder was created when the build
    // began and renamed into place with it; its KEY is written last, when the build is sealed.
    let started = std::fs::metadata(dir).ok()?.created().ok()?;
    let sealed = std::fs::metadata(dir.join("KEY")).ok()?.modified().ok()?;
    let seconds = sealed.duration_since(started).ok()?.as_secs_f64();
    let finished = sealed.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some((seconds, at(finished)?, "folder birth to KEY"))
}

/// Which part of the node an entry builds.
fn part(name: &str) -> &'static str {
    match name {
        "controlplane" => "Go binaries: etcd, kube-apiserver, -controller-manager, -scheduler, kubelet, kube-proxy, kwok, metrics-server",
        "node-addons" => "Go binaries: CoreDNS, Traefik, Prometheus, Prometheus Operator and config reloader",
        "camunda-app" => "the Camunda application (Maven)",
        _ if name.starts_with("node-images/") => "image",
        _ => "other",
    }
}

/// Each entry's build time as recorded when it was built, with its date, and the sums.
fn recorded_builds(entries: &BTreeMap<PathBuf, String>) -> String {
    let mut out = String::from(
        "  as recorded when each cache entry was built (each with its date; Go's and Maven's own caches as they were then, so an entry built after another that shared their work is shorter than a cold one; `--cold` measures an empty cache)\n",
    );
    let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
    let mut unknown = Vec::new();
    for (dir, name) in entries {
        match build_of(dir) {
            Some((seconds, finished, how)) => {
                let group = if name.starts_with("node-images/") {
                    "node images"
                } else if name == "camunda-app" {
                    "Camunda application (both backends)"
                } else {
                    "node binaries"
                };
                *sums.entry(group).or_default() += seconds;
                out += &format!(
                    "    {name:<58} {:>7.1} min  built {} ({how}); {}\n",
                    seconds / 60.0,
                    finished.format("%Y-%m-%d %H:%M UTC"),
                    part(name)
                );
            }
            None => unknown.push(name.as_str()),
        }
    }
    for (group, seconds) in &sums {
        out += &format!("  {group}: {:.1} min in all\n", seconds / 60.0);
    }
    if !unknown.is_empty() {
        out += &format!("  no build time known for: {}\n", unknown.join(", "));
    }
    out
}

/// `--cold`: everything the node needs built into an empty cache folder with an empty Go build
/// cache (module downloads and Maven's repository are kept: they are downloads, not builds),
/// timed, then removed.
fn cold_build(logs: &Path) -> Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("cold-cache-")
        .tempdir_in(logs)
        .context("creating the cold cache folder")?;
    // Set while this process has one thread: everything built from here on uses them.
    std::env::set_var("XDG_CACHE_HOME", dir.path());
    std::env::set_var("GOCACHE", dir.path().join("go-build"));
    let started = Instant::now();
    let built = crate::node::build_all(&logs.join("cold-build"), crate::flavour::Flavour::Ce);
    let took = started.elapsed();
    std::env::remove_var("XDG_CACHE_HOME");
    std::env::remove_var("GOCACHE");
    built.context("the cold build")?;
    let root = dir.path().join("camunda-conformance");
    let mut entries = BTreeMap::new();
    for kind in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        let kind = kind?;
        let kind_name = kind.file_name().to_string_lossy().into_owned();
        let nested = kind_name == "node-images";
        for entry in std::fs::read_dir(kind.path())?.flatten() {
            if nested {
                for key in std::fs::read_dir(entry.path())?.flatten() {
                    if key.path().join("KEY").is_file() {
                        let name = format!("node-images/{}", entry.file_name().to_string_lossy());
                        entries.insert(key.path(), name);
                    }
                }
            } else if entry.path().join("KEY").is_file() {
                entries.insert(entry.path(), kind_name.clone());
            }
        }
    }
    let mut text = format!(
        "  --cold: built into an empty cache folder with an empty Go build cache in {:.1} min in all (module downloads and Maven's repository kept)\n",
        took.as_secs_f64() / 60.0
    );
    text += &recorded_builds(&entries);
    // The figures are taken; the entries are not kept (the warm cache stays as it was).
    drop(dir);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entries_a_run_used_are_read_from_its_output() {
        let lines = [
            "  controlplane: cached, nothing rebuilt (/c/controlplane/9e11, verified in 0.6s)",
            "  node-images/base: cached, nothing rebuilt (/c/node-images/base/247c, verified in 0.0s)",
            "  node-images/layer-jre: the cache entry /c/x is damaged (KEY): rebuilding",
        ]
        .map(String::from);
        let entries = cache_entries(&lines);
        assert_eq!(
            entries.into_iter().collect::<Vec<_>>(),
            [
                (
                    PathBuf::from("/c/controlplane/9e11"),
                    "controlplane".to_string()
                ),
                (
                    PathBuf::from("/c/node-images/base/247c"),
                    "node-images/base".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_working_set_leaves_out_inactive_file_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(
            dir.path().join("memory.stat"),
            "cache 500\ninactive_file 7\ntotal_inactive_file 300\n",
        )
        .unwrap();
        assert_eq!(working_set(dir.path()), Some(700));
        assert_eq!(working_set(&dir.path().join("missing")), None);
    }

    #[test]
    fn recorded_builds_are_summed_by_part_and_unknown_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("controlplane/abc");
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(entry.join("BUILD"), "seconds 90.0\nfinished 1796670779\n").unwrap();
        let entries = BTreeMap::from([
            (entry, "controlplane".to_string()),
            (dir.path().join("gone"), "node-addons".to_string()),
        ]);
        let text = recorded_builds(&entries);
        assert!(text.contains("1.5 min  built 2026-12-07"), "{text}");
        assert!(text.contains("node binaries: 1.5 min in all"), "{text}");
        assert!(
            text.contains("no build time known for: node-addons"),
            "{text}"
        );
    }
}
