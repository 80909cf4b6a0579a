//! The Camunda application: built by Maven from fixtures/camunda-app (only when the jar is
//! missing or older than its sources), run as `java -javaagent:... -jar camunda-app.jar`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

use super::supervisor::Supervisor;
use super::wait::{self, Probe};

/// The jars and the jmx_exporter config every replica uses (the same files as the image).
pub struct App {
    pub jar: PathBuf,
    pub agent: PathBuf,
    pub jmx_config: PathBuf,
}

impl App {
    pub fn locate(root: &Path) -> Self {
        let target = root.join("fixtures/camunda-app/target");
        Self {
            jar: target.join("camunda-app.jar"),
            agent: target.join("agent/jmx_prometheus_javaagent.jar"),
            jmx_config: root.join("manifests/base/camunda/prometheus-jmx.yml"),
        }
    }

    /// The jars and config as copied into `dir`: replicas must not see a rebuild that happens while they
    /// run (a fat jar rewritten under a JVM makes it fail on its next class load).
    pub fn in_dir(&self, dir: &Path) -> Self {
        Self {
            jar: dir.join("camunda-app.jar"),
            agent: dir.join("jmx_prometheus_javaagent.jar"),
            jmx_config: dir.join("prometheus-jmx.yml"),
        }
    }

    /// Copies the jars into `dir`; returns the copy.
    pub fn copy_to(&self, dir: &Path) -> Result<Self> {
        let copy = self.in_dir(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (from, to) in [
            (&self.jar, &copy.jar),
            (&self.agent, &copy.agent),
            (&self.jmx_config, &copy.jmx_config),
        ] {
            std::fs::copy(from, to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
        Ok(copy)
    }
}

/// Builds the application unless the cached jar is newer than every source. Returns whether
/// Maven ran.
pub fn ensure_built(root: &Path, mvn: &Path, supervisor: &mut Supervisor) -> Result<bool> {
    let app = App::locate(root);
    let project = root.join("fixtures/camunda-app");
    let fresh = match (modified(&app.jar), modified(&app.agent)) {
        (Some(jar), Some(_)) => newest_source(&project)?.is_none_or(|source| source <= jar),
        _ => false,
    };
    if !fresh {
        println!("building the Camunda application (mvn package; cached afterwards)");
        let mut command = Command::new(mvn);
        command.current_dir(root).args([
            "-B",
            "-q",
            "-f",
            "fixtures/camunda-app/pom.xml",
            "package",
            "-DskipTests",
        ]);
        let index = supervisor.spawn("maven", command)?;
        let log = supervisor.get(index).log.clone();
        let status = wait::until(
            "mvn package (fixtures/camunda-app)",
            Duration::from_secs(1200),
            Some(&log),
            || match supervisor.get(index).exited() {
                Some(status) => Probe::Ready(status),
                None => Probe::Pending("building".into()),
            },
        )?;
        if !status.contains("exit status: 0") {
            bail!(
                "mvn package failed ({status}); see {}\n{}",
                log.display(),
                super::supervisor::log_tail(&log, 40)
            );
        }
    }
    for (what, path) in [
        ("application jar", &app.jar),
        ("jmx_exporter agent", &app.agent),
        ("jmx_exporter config", &app.jmx_config),
    ] {
        if !path.is_file() {
            bail!("the {what} {} is missing", path.display());
        }
    }
    Ok(!fresh)
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The newest modification time of pom.xml and everything under src/.
fn newest_source(project: &Path) -> Result<Option<SystemTime>> {
    let mut newest = modified(&project.join("pom.xml"));
    let mut stack = vec![project.join("src")];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                newest = newest.max(modified(&path));
            }
        }
    }
    Ok(newest)
}

/// JVM flags that favour start-up time over peak throughput: a test stack lives for minutes.
pub const FAST_START_FLAGS: [&str; 5] = [
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xss512k",
    "-Xmx512m",
    "-XX:+ExitOnOutOfMemoryError",
];

/// `java [-javaagent:...] <flags> -jar camunda-app.jar`; `agent` (metrics port, jmx_exporter
/// config) None leaves the agent out.
pub fn java_command(
    java: &Path,
    app: &App,
    agent: Option<(u16, PathBuf)>,
    tmp_dir: &Path,
) -> Command {
    let mut command = Command::new(java);
    if let Some((port, config)) = agent {
        command.arg(format!(
            "-javaagent:{}=127.0.0.1:{port}:{}",
            app.agent.display(),
            config.display()
        ));
    }
    command
        .args(FAST_START_FLAGS)
        .arg(format!("-Djava.io.tmpdir={}", tmp_dir.display()))
        .arg("-jar")
        .arg(&app.jar);
    command
}
