//! `cargo xtask mutants`: the judging code judged by mutation. cargo-mutants (pinned) mutates
//! the files that decide what a run and a fault are worth, one mutant at a time, and runs the
//! suites crate's own tests against each; a mutant no test fails is a hole in those tests.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Installed with `cargo install cargo-mutants --locked --version 27.1.0` (crates.io checks the
/// crate's checksum); another version may mutate differently, so it is refused.
const VERSION: &str = "27.1.0";
/// The judging code: the check model and `--strict`'s skip policy, the fault catalogue, the
/// secret scrubber.
const FILES: &[&str] = &[
    "suites/src/check.rs",
    "suites/src/faults.rs",
    "suites/src/scrub.rs",
];
/// One mutant's test run takes seconds; a mutant that loops is cut off here.
const TEST_TIMEOUT_S: &str = "120";
/// One mutant's build, on a busy 2-core machine.
const BUILD_TIMEOUT_S: &str = "900";
/// The whole run: 55-60 mutants, one at a time.
const RUN_BOUND: Duration = Duration::from_secs(3 * 3600);

/// What cargo-mutants writes to `mutants.out/outcomes.json` (the counts only).
#[derive(Debug, Deserialize, PartialEq, Eq)]
struct Outcomes {
    total_mutants: usize,
    caught: usize,
    missed: usize,
    unviable: usize,
    timeout: usize,
}

/// `Ok(false)` when a mutant was missed.
pub fn run() -> Result<bool> {
    check_version()?;
    let root = crate::artifacts::workspace_root();
    let out = root.join("target").join("mutants");
    let mut command = Command::new("cargo");
    command
        .current_dir(&root)
        // Mutated builds get cargo-mutants' own target folder: in a shared one they would
        // overwrite the artifacts of everyone else's builds of the same crate.
        .env_remove("CARGO_TARGET_DIR")
        .args(["mutants", "--package", "camunda-conformance-suites"])
        .args(FILES.iter().flat_map(|f| ["--file", f]))
        .args(["--jobs", "1", "--timeout", TEST_TIMEOUT_S])
        .args(["--build-timeout", BUILD_TIMEOUT_S, "--output"])
        .arg(&out)
        // The suites crate's own unit tests are what judge the judging code.
        .args(["--", "--lib"]);
    println!(
        "mutants: cargo-mutants {VERSION} on {}, one mutant at a time (takes long)",
        FILES.join(", ")
    );
    let status = crate::command::status(command, "cargo mutants", RUN_BOUND)?;
    let outcomes = read_outcomes(&out.join("mutants.out").join("outcomes.json"))?;
    println!(
        "mutants: {} in all: {} caught, {} missed, {} unviable, {} timeout (cargo-mutants exit {status})",
        outcomes.total_mutants, outcomes.caught, outcomes.missed, outcomes.unviable, outcomes.timeout
    );
    let missed = out.join("mutants.out").join("missed.txt");
    if outcomes.missed > 0 {
        let text = std::fs::read_to_string(&missed)
            .with_context(|| format!("reading {}", missed.display()))?;
        println!("missed:\n{text}");
    }
    Ok(judge(&outcomes))
}

/// A run passes when no viable mutant was missed (and some were caught: a run that built no
/// mutant proves nothing).
fn judge(outcomes: &Outcomes) -> bool {
    outcomes.missed == 0 && outcomes.caught > 0
}

fn check_version() -> Result<()> {
    let output = crate::command::output(
        {
            let mut command = Command::new("cargo");
            command.args(["mutants", "--version"]);
            command
        },
        "cargo mutants --version",
        Duration::from_secs(30),
    )
    .with_context(|| {
        format!("cargo-mutants is not installed: cargo install cargo-mutants --locked --version {VERSION}")
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim() != format!("cargo-mutants {VERSION}") {
        bail!(
            "cargo mutants --version says `{}`; this step is pinned to {VERSION}: cargo install cargo-mutants --locked --version {VERSION}",
            text.trim()
        );
    }
    Ok(())
}

fn read_outcomes(path: &Path) -> Result<Outcomes> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_read_and_any_missed_or_timed_out_mutant_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcomes.json");
        std::fs::write(
            &path,
            r#"{"outcomes": [], "total_mutants": 55, "caught": 29, "missed": 9, "unviable": 14, "timeout": 3, "success": 0, "failure": 0}"#,
        )
        .unwrap();
        let outcomes = read_outcomes(&path).unwrap();
        assert_eq!(
            outcomes,
            Outcomes {
                total_mutants: 55,
                caught: 29,
                missed: 9,
                unviable: 14,
                timeout: 3
            }
        );
        assert!(!judge(&outcomes));
        let clean = Outcomes {
            missed: 0,
            timeout: 0,
            ..outcomes
        };
        assert!(judge(&clean));
        // A timeout is a mutant the tests stopped (by the bound), not one they let pass.
        assert!(judge(&Outcomes {
            timeout: 2,
            ..clean
        }));
        assert!(!judge(&Outcomes { caught: 0, ..clean }));
        let err = read_outcomes(&dir.path().join("absent.json")).unwrap_err();
        assert!(format!("{err:#}").contains("absent.json"), "{err:#}");
    }
}
