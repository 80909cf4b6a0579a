//! The Camunda application: built by Maven from fixtures/camunda-app for one flavour
//! (`-Dflavour=ce|operaton`) into the content-keyed build cache (`crate::cache`: the key hashes
//! the flavour, pom.xml, every source file and the Maven and Java versions), run as
//! `java -javaagent:... -jar camunda-app.jar`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::supervisor::Supervisor;
use super::wait::{self, Probe};
use crate::flavour::Flavour;
use camunda_conformance_controlplane::cache::{self, Cache};

/// The files of a cache entry.
const JAR: &str = "camunda-app.jar";
const AGENT: &str = "agent/jmx_prometheus_javaagent.jar";
/// Bumped when what goes into the key changes.
const KEY_SCHEMA: &str = "camunda-app cache 2";

/// The jars and the jmx_exporter config every replica uses (the same files as the image).
pub struct App {
    pub jar: PathBuf,
    pub agent: PathBuf,
    pub jmx_config: PathBuf,
    /// The Camunda 7 line the jar was built from.
    pub flavour: Flavour,
}

impl App {
    /// The jars of a cache entry and the repository's jmx_exporter config of the flavour.
    fn in_cache(entry: &Path, root: &Path, flavour: Flavour) -> Self {
        Self {
            jar: entry.join(JAR),
            agent: entry.join(AGENT),
            jmx_config: root.join(flavour.jmx_config()),
            flavour,
        }
    }

    /// The jars and config as copied into `dir`: replicas must not see a rebuild that happens
    /// while they run (a fat jar rewritten under a JVM makes it fail on its next class load).
    pub fn in_dir(dir: &Path, flavour: Flavour) -> Self {
        Self {
            jar: dir.join("camunda-app.jar"),
            agent: dir.join("jmx_prometheus_javaagent.jar"),
            jmx_config: dir.join("prometheus-jmx.yml"),
            flavour,
        }
    }

    /// Copies the jars into `dir`; returns the copy.
    pub fn copy_to(&self, dir: &Path) -> Result<Self> {
        let copy = Self::in_dir(dir, self.flavour);
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

/// The application of `flavour` from the build cache, built by Maven first when its entry is
/// missing or damaged.
pub fn ensure_built(
    root: &Path,
    mvn: &Path,
    flavour: Flavour,
    supervisor: &mut Supervisor,
) -> Result<App> {
    flavour.ensure_available()?;
    let project = root.join("fixtures/camunda-app");
    let cache = Cache {
        name: "camunda-app",
        key_text: key_text(&project, mvn, flavour)?,
        files: &[JAR, AGENT],
    };
    let entry = cache.ensure(|into| {
        println!(
            "building the Camunda application for {} (mvn package, into the build cache)",
            flavour.describe()
        );
        maven_package(root, mvn, flavour, supervisor)?;
        let target = build_dir(&project, flavour);
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
    let app = App::in_cache(&entry, root, flavour);
    if !app.jmx_config.is_file() {
        bail!(
            "the jmx_exporter config {} is missing",
            app.jmx_config.display()
        );
    }
    Ok(app)
}

/// Where Maven builds a flavour: one folder each (the pom's `<directory>`), so a build of one
/// never packages another's classes.
fn build_dir(project: &Path, flavour: Flavour) -> PathBuf {
    project.join("target").join(flavour.name())
}

/// `mvn package` for one flavour (the pom's profile switch).
fn maven_args(flavour: Flavour) -> Vec<String> {
    [
        "-B",
        "-q",
        "-f",
        "fixtures/camunda-app/pom.xml",
        "package",
        "-DskipTests",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([format!("-Dflavour={}", flavour.name())])
    .collect()
}

fn maven_package(
    root: &Path,
    mvn: &Path,
    flavour: Flavour,
    supervisor: &mut Supervisor,
) -> Result<()> {
    let mut command = Command::new(mvn);
    command.current_dir(root).args(maven_args(flavour));
    let index = supervisor.spawn("maven", command)?;
    let log = supervisor.get(index).log.clone();
    let status = wait::until(
        &format!("mvn package (fixtures/camunda-app, {})", flavour.name()),
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

/// Everything the build depends on: the flavour, the tool versions, pom.xml and every file under
/// src/.
fn key_text(project: &Path, mvn: &Path, flavour: Flavour) -> Result<String> {
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
    Ok(key_from(&tools, flavour, &sources_text(project)?))
}

/// The cache key's text: a build of one flavour is never taken for another's.
fn key_from(tools: &str, flavour: Flavour, sources: &str) -> String {
    format!(
        "{KEY_SCHEMA}\nflavour {}\n{tools}\n{sources}",
        flavour.name()
    )
}

/// One line per input file: its sha256 and its path relative to the project.
fn sources_text(project: &Path) -> Result<String> {
    let mut text = String::new();
    let mut files = vec![project.join("pom.xml")];
    files.extend(crate::artifacts::files_below(&project.join("src"))?);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flavour_has_its_own_cache_key_and_build_folder() {
        let ce = key_from("Apache Maven 3.8", Flavour::Ce, "abc  pom.xml\n");
        let operaton = key_from("Apache Maven 3.8", Flavour::Operaton, "abc  pom.xml\n");
        assert_ne!(ce, operaton);
        assert!(operaton.contains("flavour operaton\n"));
        let project = Path::new("/r/fixtures/camunda-app");
        assert_eq!(
            build_dir(project, Flavour::Operaton),
            Path::new("/r/fixtures/camunda-app/target/operaton")
        );
    }

    #[test]
    fn maven_gets_the_flavour_switch() {
        let args = maven_args(Flavour::Operaton);
        assert_eq!(args.last().map(String::as_str), Some("-Dflavour=operaton"));
        assert!(args.contains(&"package".to_string()));
    }

    #[test]
    fn the_pom_knows_every_buildable_flavour() {
        let pom = std::fs::read_to_string(
            crate::artifacts::workspace_root().join("fixtures/camunda-app/pom.xml"),
        )
        .expect("pom.xml");
        assert!(pom.contains("<flavour>ce</flavour>"));
        for flavour in [Flavour::Ce, Flavour::Operaton, Flavour::Cibseven] {
            let has_profile = pom.contains(&format!("<value>{}</value>", flavour.name()));
            // CE is the pom's default; a flavour refused before Maven needs no profile.
            let needs_profile = flavour != Flavour::Ce && flavour.ensure_available().is_ok();
            assert_eq!(has_profile, needs_profile, "{flavour:?}");
        }
    }

    #[test]
    fn the_sources_key_changes_with_a_source_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("src/main")).unwrap();
        std::fs::write(dir.path().join("pom.xml"), "<project/>").unwrap();
        std::fs::write(dir.path().join("src/main/A.java"), "class A {}").unwrap();
        let before = sources_text(dir.path()).unwrap();
        std::fs::write(dir.path().join("src/main/A.java"), "class A { }").unwrap();
        assert_ne!(before, sources_text(dir.path()).unwrap());
        assert!(before.contains("src/main/A.java"));
    }
}
