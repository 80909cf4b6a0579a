//! Picks the backend, prepares the run's artifacts folder and hands over to it.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::artifacts::{Artifacts, Timings};
use crate::{kind, local, BackendChoice, E2eArgs};

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
pub fn e2e(args: &E2eArgs) -> Result<bool> {
    let chosen = choose(args.backend);
    println!(
        "backend: {} ({})",
        format!("{:?}", chosen.backend).to_lowercase(),
        chosen.reason
    );
    let mut timings = Timings::default();
    let timings = &mut timings;
    match chosen.backend {
        BackendChoice::Local => {
            let artifacts = Artifacts::create(args, "local")?;
            let outcome = local::e2e(args, &artifacts, timings);
            artifacts.finish(args, &outcome, timings);
            outcome
        }
        BackendChoice::Kind
        | BackendChoice::Existing
        | BackendChoice::Kwok
        | BackendChoice::Node => {
            let name = format!("{:?}", chosen.backend).to_lowercase();
            let name = name.as_str();
            let artifacts = Artifacts::create(args, name)?;
            let outcome = kind::e2e(args, chosen.backend, &artifacts, timings);
            artifacts.finish(args, &outcome, timings);
            outcome
        }
        BackendChoice::Auto => unreachable!("choose() never returns Auto"),
    }
}
