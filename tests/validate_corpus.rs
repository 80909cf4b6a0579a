//! The precision corpus: public Helm charts of Camunda 7 and its forks
//! (fixtures/validate/corpus/<entry>/chart, each with its ORIGIN.md), rendered with several value
//! sets. Each `<entry>/expected/<set>.txt` names the values of that render (`# values:` line) and
//! every finding `validate` gives on it, judged by hand: `TP` (a true problem) or `FP` (a false
//! one), then severity, rule and resource. A finding gained or lost fails here, and so does a
//! false positive at error severity (the goal: no false error on the corpus).

use std::path::{Path, PathBuf};

use camunda_conformance::validate::input::Options;
use camunda_conformance::validate::validate_with;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/validate/corpus")
}

/// One judged render: its values and its judged findings (`verdict severity rule resource`).
struct Case {
    name: String,
    options: Options,
    judged: Vec<(String, String)>,
}

fn case(entry: &Path, expected: &Path) -> Case {
    let text = std::fs::read_to_string(expected)
        .unwrap_or_else(|err| panic!("{}: {err}", expected.display()));
    let name = format!(
        "{}/{}",
        entry.file_name().unwrap().to_string_lossy(),
        expected.file_stem().unwrap().to_string_lossy()
    );
    let mut options = Options::default();
    let values = text
        .lines()
        .find_map(|l| l.strip_prefix("# values:"))
        .unwrap_or_else(|| panic!("{name}: no `# values:` line"));
    let mut words = values.split_whitespace();
    while let Some(word) = words.next() {
        let argument = words
            .next()
            .unwrap_or_else(|| panic!("{name}: `{word}` without its argument"));
        match word {
            "-f" => options.values.push(entry.join(argument)),
            "--set" => options.set.push(argument.to_string()),
            other => panic!("{name}: unknown option `{other}` in `# values:`"),
        }
    }
    let judged = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (verdict, finding) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("{name}: `{l}` is not `VERDICT severity rule resource`"));
            assert!(
                matches!(verdict, "TP" | "FP"),
                "{name}: verdict `{verdict}` is neither TP nor FP"
            );
            (verdict.to_string(), finding.to_string())
        })
        .collect();
    Case {
        name,
        options,
        judged,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for entry in entries {
        let mut expected: Vec<PathBuf> = std::fs::read_dir(entry.join("expected"))
            .unwrap_or_else(|err| panic!("{}/expected: {err}", entry.display()))
            .map(|e| e.unwrap().path())
            .collect();
        expected.sort();
        assert!(
            entry.join("ORIGIN.md").is_file(),
            "{} names no origin",
            entry.display()
        );
        cases.extend(expected.iter().map(|e| case(&entry, e)));
    }
    cases
}

#[test]
fn every_corpus_render_gives_exactly_its_judged_findings() {
    let cases = cases();
    assert!(cases.len() >= 15, "3 charts × 5 value sets at least");
    let mut failures = Vec::new();
    for case in &cases {
        let report = validate_with(
            &[corpus()
                .join(case.name.split('/').next().unwrap())
                .join("chart")],
            &case.options,
        )
        .unwrap_or_else(|err| panic!("{}: {err}", case.name));
        let mut found: Vec<String> = report
            .findings
            .iter()
            .map(|f| format!("{} {} {}", f.severity.as_str(), f.rule, f.resource))
            .collect();
        found.sort();
        let mut expected: Vec<String> = case.judged.iter().map(|(_, f)| f.clone()).collect();
        expected.sort();
        if found != expected {
            failures.push(format!(
                "{}:\n  found:    {found:?}\n  expected: {expected:?}",
                case.name
            ));
        }
        for (verdict, finding) in &case.judged {
            assert!(
                !(verdict == "FP" && finding.starts_with("error ")),
                "{}: a false error: {finding}",
                case.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
