//! Load through the ingress for the scaling suite: authenticated engine-rest queries from a
//! fixed number of concurrent workers until told to stop.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::check::Ctx;

/// Concurrent request loops.
const WORKERS: usize = 16;

/// Queries that make the engine work (authentication, a database query, JSON).
const PATHS: &[&str] = &[
    "/process-definition?latestVersion=true",
    "/history/process-instance?maxResults=100",
    "/history/activity-instance?maxResults=100",
    "/task?maxResults=100",
];

#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub last_error: Option<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.requests as f64 / self.elapsed.as_secs_f64().max(0.001);
        write!(
            f,
            "{} requests ({rate:.0}/s), {} errors over {:.0} s",
            self.requests,
            self.errors,
            self.elapsed.as_secs_f64()
        )?;
        if let Some(error) = &self.last_error {
            write!(f, "; last error: {error}")?;
        }
        Ok(())
    }
}

/// Sends requests until `stop` is set. Bounded anyway by the scale-out and scale-in bounds,
/// so that a forgotten stop cannot load the stack forever.
pub(crate) async fn generate(ctx: &Ctx<'_>, stop: &AtomicBool) -> LoadReport {
    let started = Instant::now();
    let limit = Duration::from_secs(ctx.target.bounds.scale_out_s * 3 + 60);
    let Ok(password) = ctx.password() else {
        return LoadReport {
            last_error: Some("no credentials".into()),
            ..LoadReport::default()
        };
    };
    let worker = |index: usize| async move {
        let mut report = LoadReport::default();
        let mut n = index;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
            let url = ctx.target.rest_url(PATHS[n % PATHS.len()]);
            n += 1;
            let result = ctx
                .http
                .ingress
                .get(&url)
                .basic_auth(ctx.username(), Some(password.expose()))
                .send()
                .await
                .and_then(|r| r.error_for_status());
            report.requests += 1;
            if let Err(err) = result {
                report.errors += 1;
                report.last_error = Some(err.to_string());
                // Back off a little so that a broken ingress is not hammered.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        report
    };
    let reports = futures::future::join_all((0..WORKERS).map(worker)).await;
    let mut total = LoadReport {
        elapsed: started.elapsed(),
        ..LoadReport::default()
    };
    for report in reports {
        total.requests += report.requests;
        total.errors += report.errors;
        if report.last_error.is_some() {
            total.last_error = report.last_error;
        }
    }
    total
}
