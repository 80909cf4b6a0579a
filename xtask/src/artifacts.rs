//! The run's artifacts folder (logs, rendered config, reports) and phase timings.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Every file below `dir` (symlinks not followed), sorted: a listing that does not depend on
/// directory order.
pub fn files_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// One folder per run that keeps everything a person needs to debug it.
pub struct Artifacts {
    pub dir: PathBuf,
}

impl Artifacts {
    /// `explicit` (`--artifacts`), else `target/e2e/<timestamp>-<run name>`.
    pub fn create(explicit: Option<&Path>, run_name: &str) -> Result<Self> {
        let dir = match explicit {
            Some(dir) => dir.to_path_buf(),
            None => {
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                workspace_root()
                    .join("target/e2e")
                    .join(format!("{stamp}-{run_name}"))
            }
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the artifacts folder {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// A path inside the folder, its parent created.
    pub fn path(&self, relative: &str) -> Result<PathBuf> {
        let path = self.dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        Ok(path)
    }

    /// The last line of every run names the folder. A run without suites (`--plan`, `--down`)
    /// names no verdict and leaves no empty folder behind.
    pub fn finish(&self, ran_suites: bool, outcome: &Result<bool>, timings: &Timings) {
        if !ran_suites {
            let _ = std::fs::remove_dir(&self.dir); // only succeeds when empty
            return;
        }
        timings.write(self);
        let verdict = match outcome {
            _ if crate::local::supervisor::interrupted() => "interrupted",
            Ok(true) => "passed",
            Ok(false) => "FAILED (a check failed)",
            Err(_) => "FAILED (the run could not complete)",
        };
        println!("e2e {verdict}; artifacts: {}", self.dir.display());
    }
}

/// The workspace root, so that the job works from any directory of the checkout.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Phase durations of a run, written to its artifacts folder.
#[derive(Default)]
pub struct Timings {
    entries: Vec<(String, Duration)>,
}

impl Timings {
    pub fn record(&mut self, phase: impl Into<String>, took: Duration) {
        self.entries.push((phase.into(), took));
    }

    /// Runs `step` and records how long it took, whatever its outcome.
    pub fn measure<T>(&mut self, phase: &str, step: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = step();
        self.record(phase, started.elapsed());
        result
    }

    /// `timings.txt` in the artifacts folder (when the run keeps one).
    pub fn write(&self, artifacts: &Artifacts) {
        let mut text = format!("{:<40} {:>10}\n", "phase", "seconds");
        for (phase, took) in &self.entries {
            text += &format!("{phase:<40} {:>10.2}\n", took.as_secs_f64());
        }
        let _ = std::fs::write(artifacts.dir.join("timings.txt"), text);
    }
}

/// `<backend>-<sessions>`, with the flavour between them for a fork: `local-operaton-sticky`.
pub fn run_name(backend: &str, flavour: crate::flavour::Flavour, sessions: &str) -> String {
    match flavour {
        crate::flavour::Flavour::Ce => format!("{backend}-{sessions}"),
        fork => format!("{backend}-{}-{sessions}", fork.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::run_name;
    use crate::flavour::Flavour;

    #[test]
    fn a_fork_run_is_named_after_its_flavour() {
        assert_eq!(run_name("local", Flavour::Ce, "sticky"), "local-sticky");
        assert_eq!(
            run_name("local", Flavour::Operaton, "shared-redis"),
            "local-operaton-shared-redis"
        );
    }
}
