// Temporary live driver (removed before hand-over): runs suites against a target file.
use camunda_conformance_suites::{run, RunEvent, Suite, Target};
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let target = Target::load(std::path::Path::new(&args[1]))?;
    let suites: Vec<Suite> = args[2..]
        .iter()
        .map(|s| s.parse())
        .collect::<anyhow::Result<_>>()?;
    let results = run(&target, &suites, &mut |e| {
        if let RunEvent::CheckFinished(r) = e {
            println!(
                "{:?} {} ({} ms)\n    {}",
                r.status,
                r.id,
                r.duration_ms,
                r.message.replace('\n', "\n    ")
            );
        }
    })
    .await;
    let failed = results
        .iter()
        .filter(|r| r.status == camunda_conformance_suites::Status::Fail)
        .count();
    println!("{} checks, {failed} failed", results.len());
    Ok(())
}
