//! Ctrl-C/SIGTERM on the kind backend: the run's kind cluster is deleted (unless `--keep`), as
//! at the end of a run, then the process exits 130 (the port-forwards are this process's own
//! tasks and end with it).

use std::sync::Mutex;

use super::cli::kind;

#[derive(Default)]
struct Pending {
    /// The cluster to delete: this run's, without `--keep`.
    cluster: Option<String>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending { cluster: None });

fn pending() -> std::sync::MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs the handler once. The kwok backend's control plane is the local supervisor's to
/// stop (its handler owns the signal then), so this is for kind and existing only.
pub fn install() {
    let installed = ctrlc::set_handler(|| {
        crate::local::supervisor::mark_interrupted();
        let cluster = pending().cluster.take();
        eprintln!("\ninterrupted");
        crate::command::stop_running();
        if let Some(name) = cluster {
            eprintln!("interrupted: deleting kind cluster {name} (pass --keep to keep it)");
            if let Err(err) = kind::delete_cluster(&name).run() {
                eprintln!("warning: {err:#}");
            }
        }
        std::process::exit(130);
    });
    if let Err(err) = installed {
        eprintln!("warning: no Ctrl-C cleanup: {err}");
    }
}

/// The run owns `cluster` now; the handler deletes it unless the run keeps it.
pub fn cluster_owned(cluster: &str, keep: bool) {
    pending().cluster = (!keep).then(|| cluster.to_string());
}

/// Teardown is under way (or done): the handler must not delete it a second time.
pub fn cluster_released() {
    pending().cluster = None;
}
