//! Bounded waits with a live line on the terminal: what, elapsed, timeout, what was seen last.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::supervisor::log_tail;

/// One probe's verdict.
pub enum Probe<T> {
    Ready(T),
    /// Not yet; the text is what was seen (shown live and in the timeout error).
    Pending(String),
    /// Will never become ready (e.g. the process exited).
    Failed(String),
}

/// Polls `probe` until ready, failed or `timeout`; on failure the error names what was seen last
/// and the tail of `log`.
pub fn until<T>(
    what: &str,
    timeout: Duration,
    log: Option<&Path>,
    mut probe: impl FnMut() -> Probe<T>,
) -> Result<T> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let started = Instant::now();
    let mut last: String;
    let outcome = loop {
        if super::supervisor::interrupted() {
            break Err("interrupted".to_string());
        }
        match probe() {
            Probe::Ready(value) => break Ok(value),
            Probe::Pending(seen) => last = seen,
            Probe::Failed(seen) => break Err(seen),
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            break Err(format!("timed out after {timeout:?}; last seen: {last}"));
        }
        bar.set_message(format!(
            "waiting for {what} ({:.1}s / {}s): {last}",
            elapsed.as_secs_f64(),
            timeout.as_secs()
        ));
        bar.tick();
        sleep(Duration::from_millis(200));
    };
    bar.finish_and_clear();
    match outcome {
        Ok(value) => {
            println!("  {what}: ready in {:.1}s", started.elapsed().as_secs_f64());
            Ok(value)
        }
        Err(reason) => {
            let tail = log
                .map(|path| {
                    format!(
                        "\n--- last lines of {} ---\n{}",
                        path.display(),
                        log_tail(path, 30)
                    )
                })
                .unwrap_or_default();
            bail!("waiting for {what}: {reason}{tail}")
        }
    }
}
