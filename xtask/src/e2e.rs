//! `cargo xtask e2e`: picks the backend (and says why), opens it and drives it through the same
//! phases whatever it is — bring up (or connect), the suites against its target, the faults,
//! diagnostics when anything failed, tear down (or keep).

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::artifacts::{Artifacts, Timings};
use crate::backend::{Backend, BackendChoice, RunSettings};
use crate::{kind, local};

/// A backend chosen for this run, with the reason shown on the first line.
pub struct Chosen {
    pub backend: BackendChoice,
    pub reason: String,
}

pub fn choose(requested: BackendChoice) -> Chosen {
    match requested {
        BackendChoice::Auto => match docker_engine_version() {
            Some(version) => Chosen {
                backend: BackendChoice::Kind,
                reason: format!("auto: a Docker engine answers (server {version})"),
            },
            None => Chosen {
                backend: BackendChoice::Local,
                reason: "auto: no Docker engine answers `docker version`, running the stack as local processes".into(),
            },
        },
        explicit => Chosen {
            backend: explicit,
            reason: "named on the command line".into(),
        },
    }
}

/// The server version when a Docker engine answers, `None` when only the client (or nothing) is there.
fn docker_engine_version() -> Option<String> {
    let mut docker = Command::new("docker");
    docker.args(["version", "--format", "{{.Server.Version}}"]);
    // A daemon that does not answer within seconds is as good as absent.
    let output = crate::command::output(docker, "docker version", Duration::from_secs(10)).ok()?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !version.is_empty()).then_some(version)
}

/// Runs the end-to-end job; `Ok(false)` when a check failed. Phase timings land in the
/// artifacts folder (`timings.txt`).
pub fn run(settings: &RunSettings) -> Result<bool> {
    let chosen = choose(settings.backend);
    println!("backend: {} ({})", chosen.backend.name(), chosen.reason);
    let sessions = serde_json::to_value(settings.sessions)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let run_name = crate::artifacts::run_name(chosen.backend.name(), settings.flavour, &sessions);
    let artifacts = Artifacts::create(settings.artifacts.as_deref(), &run_name)?;
    let mut timings = Timings::default();
    let outcome = open_and_drive(settings, chosen.backend, &artifacts, &mut timings);
    artifacts.finish(!settings.plan && !settings.down, &outcome, &timings);
    outcome
}

fn open_and_drive(
    settings: &RunSettings,
    choice: BackendChoice,
    artifacts: &Artifacts,
    timings: &mut Timings,
) -> Result<bool> {
    if settings.down {
        return match choice {
            BackendChoice::Local => local::down_kept(),
            _ => kind::down_kept(settings, choice, artifacts),
        };
    }
    if settings.plan {
        return kind::print_plan(settings, choice, artifacts);
    }
    let mut backend: Box<dyn Backend> = match choice {
        BackendChoice::Local => Box::new(local::LocalBackend::open(settings, artifacts)?),
        BackendChoice::Auto => bail!("choose() never returns auto"),
        cluster => Box::new(kind::ClusterBackend::open(settings, cluster, artifacts)?),
    };
    drive(backend.as_mut(), settings.faults, timings)
}

/// The phases every backend goes through, in order; `down` whatever happened.
fn drive(backend: &mut dyn Backend, faults: bool, timings: &mut Timings) -> Result<bool> {
    let mut outcome = backend.up(timings).and_then(|()| {
        if let Some(target) = backend.target() {
            println!("stack up; target description: {}", target.display());
        }
        backend.suites(timings)
    });
    if faults {
        match outcome {
            Ok(true) => outcome = backend.faults(timings),
            Ok(false) => {
                println!("faults skipped: the suites must pass before faults can prove anything")
            }
            Err(_) => {}
        }
    }
    if !matches!(outcome, Ok(true)) && !crate::local::supervisor::interrupted() {
        backend.diagnostics();
    }
    let down = backend.down(timings);
    match (outcome, down) {
        (outcome, Ok(())) => outcome,
        (Ok(_), Err(err)) => Err(err.context("tearing the stack down")),
        (Err(err), Err(down_err)) => {
            eprintln!("warning: tearing the stack down: {down_err:#}");
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;
    use std::path::Path;

    /// Records the phases it is driven through; fails where told to.
    #[derive(Default)]
    struct Recorder {
        phases: Vec<&'static str>,
        up_fails: bool,
        suites_pass: bool,
        down_fails: bool,
    }

    impl Backend for Recorder {
        fn up(&mut self, _: &mut Timings) -> Result<()> {
            self.phases.push("up");
            if self.up_fails {
                bail!("no stack");
            }
            Ok(())
        }
        fn target(&self) -> Option<&Path> {
            None
        }
        fn suites(&mut self, _: &mut Timings) -> Result<bool> {
            self.phases.push("suites");
            Ok(self.suites_pass)
        }
        fn faults(&mut self, _: &mut Timings) -> Result<bool> {
            self.phases.push("faults");
            Ok(true)
        }
        fn diagnostics(&mut self) {
            self.phases.push("diagnostics");
        }
        fn down(&mut self, _: &mut Timings) -> Result<()> {
            self.phases.push("down");
            if self.down_fails {
                return Err(anyhow!("a process left"));
            }
            Ok(())
        }
    }

    fn driven(mut backend: Recorder, faults: bool) -> (Result<bool>, Vec<&'static str>) {
        let outcome = drive(&mut backend, faults, &mut Timings::default());
        (outcome, backend.phases)
    }

    #[test]
    fn a_green_run_goes_up_tests_injects_faults_and_goes_down() {
        let green = Recorder {
            suites_pass: true,
            ..Recorder::default()
        };
        let (outcome, phases) = driven(green, true);
        assert!(outcome.unwrap());
        assert_eq!(phases, ["up", "suites", "faults", "down"]);
    }

    #[test]
    fn a_failed_check_skips_the_faults_and_collects_diagnostics() {
        let (outcome, phases) = driven(Recorder::default(), true);
        assert!(!outcome.unwrap());
        assert_eq!(phases, ["up", "suites", "diagnostics", "down"]);
    }

    #[test]
    fn a_stack_that_does_not_come_up_is_still_torn_down() {
        let broken = Recorder {
            up_fails: true,
            ..Recorder::default()
        };
        let (outcome, phases) = driven(broken, false);
        assert_eq!(outcome.unwrap_err().to_string(), "no stack");
        assert_eq!(phases, ["up", "diagnostics", "down"]);
    }

    #[test]
    fn a_teardown_that_leaves_something_fails_a_green_run() {
        let leaky = Recorder {
            suites_pass: true,
            down_fails: true,
            ..Recorder::default()
        };
        let (outcome, _) = driven(leaky, false);
        let err = format!("{:#}", outcome.unwrap_err());
        assert!(
            err.contains("tearing the stack down: a process left"),
            "{err}"
        );
    }
}
