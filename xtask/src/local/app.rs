//! The Camunda application: built by Maven from fixtures/camunda-app into the content-keyed
//! build cache (`crate::cache`: the key hashes pom.xml, every source file and the Maven and
//! Java versions), run as `java -javaagent:... -jar camunda-app.jar`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::supervisor::Supervisor;
use super::wait::{self, Probe};
use camunda_conformance_controlplane::cache::{self, Cache};

/// The files of a cache entry.
const JAR: &str = "camunda-app.jar";
const AGENT: &str = "agent/jmx_prometheus_javaagent.jar";
/// Bumped when what goes into the key changes.
const KEY_SCHEMA: &str = "camunda-app cache 1";

/// The jars and the jmx_exporter config every replica uses (the same files as the image).
pub struct App {
    pub jar: PathBuf,
    pub agent: PathBuf,
    pub jmx_config: PathBuf,
}

impl App {
    /// The jars of a cache entry and the repository's jmx_exporter config.
    fn in_cache(entry: &Path, root: &Path) -> Self {
        Self {
            jar: entry.join(JAR),
            agent: entry.join(AGENT),
            jmx_config: root.join("manifests/base/camunda/prometheus-jmx.yml"),
        }
    }

    /// The jars and config as copied into `dir`: replicas must not see a rebuild that happens
    /// while they run (a fat jar rewritten under a JVM makes it fail on its next class load).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            jar: dir.join("camunda-app.jar"),
            agent: dir.join("jmx_prometheus_javaagent.jar"),
            jmx_config: dir.join("prometheus-jmx.yml"),
        }
    }

    /// Copies the jars into `dir`; returns the copy.
    pub fn copy_to(&self, dir: &Path) -> Result<Self> {
        let copy = Self::in_dir(dir);
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

/// The application from the build cache, built by Maven first when its entry is missing or
/// damaged.
pub fn ensure_built(root: &Path, mvn: &Path, supervisor: &mut Supervisor) -> Result<App> {
    let project = root.join("fixtures/camunda-app");
    let cache = Cache {
        name: "camunda-app",
        key_text: key_text(&project, mvn)?,
        files: &[JAR, AGENT],
    };
    let entry = cache.ensure(|into| {
        println!("building the Camunda application (mvn package, into the build cache)");
        maven_package(root, mvn, supervisor)?;
        let target = project.join("target");
        for (file, built) in [
            (JAR, target.join("camunda-app.jar")),
            (AGENT, target.join("agent/jmx_prometheus_javaagent.jar")),
        ] {
            if !zip_complete(&built)? {
                bail!("{} is not a complete jar", built.display());
            }
            let to = into.join(file);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&built, &to)
                .with_context(|| format!("copying {} to {}", built.display(), to.display()))?;
        }
        Ok(())
    })?;
    let app = App::in_cache(&entry, root);
    if !app.jmx_config.is_file() {
        bail!(
            "the jmx_exporter config {} is missing",
            app.jmx_config.display()
        );
    }
    Ok(app)
}

fn maven_package(root: &Path, mvn: &Path, supervisor: &mut Supervisor) -> Result<()> {
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
    Ok(())
}

/// Everything the build depends on: the tool versions, pom.xml and every file under src/.
fn key_text(project: &Path, mvn: &Path) -> Result<String> {
    let mut version = Command::new(mvn);
    version.args(["-B", "-v"]);
    let output = crate::command::output(version, "mvn -v", Duration::from_secs(60))?;
    if !output.status.success() {
        bail!("mvn -v failed ({})", output.status);
    }
    let tools: String = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with("Apache Maven") || l.starts_with("Java version"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut text = format!("{KEY_SCHEMA}\n{tools}\n");
    let mut files = vec![project.join("pom.xml")];
    files.extend(source_files(&project.join("src"))?);
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let relative = file.strip_prefix(project).unwrap_or(&file);
        text.push_str(&format!(
            "{}  {}\n",
            cache::hex(&Sha256::digest(&bytes)),
            relative.display()
        ));
    }
    Ok(text)
}

/// Every file below `dir`, sorted (the key must not depend on directory order).
fn source_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let path = entry
                .with_context(|| format!("listing {}", dir.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a jar (zip) ends with its end-of-central-directory record: a jar cut short by an
/// interrupted write does not.
fn zip_complete(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // The record is 22 bytes plus a comment of at most 64 KiB.
    let tail = &bytes[bytes.len().saturating_sub(22 + 65_535)..];
    Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
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
