//! The external programs the kind backend drives (kind, docker, kubectl), as typed commands that
//! the plan can print and the executor can run: one place that knows their command lines.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// One command line. Built by the functions below, shown by `--plan`, run by the executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: &'static str,
    pub args: Vec<String>,
}

/// What a captured run printed.
pub struct Captured {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Cmd {
    fn new<I, S>(program: &'static str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program,
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(self.program);
        command.args(&self.args).stdin(Stdio::null());
        command
    }

    /// Runs with the terminal attached (long operations show their own progress).
    pub fn run(&self) -> Result<()> {
        let status = self
            .command()
            .status()
            .with_context(|| format!("starting `{self}` (is {} installed?)", self.program))?;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }

    /// Starts in the background: stdout piped to the caller, stderr into `stderr`.
    pub fn spawn(&self, stderr: std::fs::File) -> Result<std::process::Child> {
        self.command()
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting `{self}` (is {} installed?)", self.program))
    }

    /// Runs and captures both streams, whatever the exit status.
    pub fn capture(&self) -> Result<Captured> {
        let output = self
            .command()
            .output()
            .with_context(|| format!("starting `{self}` (is {} installed?)", self.program))?;
        Ok(Captured {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs and returns stdout; a failure carries the command's stderr.
    pub fn output(&self) -> Result<String> {
        let captured = self.capture()?;
        if !captured.success {
            bail!("`{self}` failed: {}", captured.stderr.trim());
        }
        Ok(captured.stdout)
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program)?;
        for arg in &self.args {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
            if plain {
                write!(f, " {arg}")?;
            } else {
                write!(f, " '{}'", arg.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub mod kind {
    use super::*;

    pub fn version() -> Cmd {
        Cmd::new("kind", ["version"])
    }

    pub fn create_cluster(name: &str, config: &Path) -> Cmd {
        // The config names the node image; --wait lets the control plane become Ready first.
        Cmd::new(
            "kind",
            [
                "create",
                "cluster",
                "--name",
                name,
                "--config",
                &path(config),
                "--wait",
                "120s",
            ],
        )
    }

    pub fn delete_cluster(name: &str) -> Cmd {
        Cmd::new("kind", ["delete", "cluster", "--name", name])
    }

    pub fn get_clusters() -> Cmd {
        Cmd::new("kind", ["get", "clusters"])
    }

    pub fn load_docker_image(cluster: &str, image: &str) -> Cmd {
        Cmd::new("kind", ["load", "docker-image", image, "--name", cluster])
    }

    pub fn load_image_archive(cluster: &str, archive: &Path) -> Cmd {
        Cmd::new(
            "kind",
            ["load", "image-archive", &path(archive), "--name", cluster],
        )
    }

    /// `kind get clusters` output → whether `name` is among them.
    pub fn cluster_listed(output: &str, name: &str) -> bool {
        output.lines().any(|line| line.trim() == name)
    }

    /// kind's failure when Docker's containerd image store hands it an image whose layers it
    /// cannot export; `docker save` + `kind load image-archive` works then.
    pub fn is_content_digest_failure(stderr: &str) -> bool {
        stderr.contains("content digest") && stderr.contains("not found")
    }
}

pub mod docker {
    use super::*;

    /// Answers only when an engine does (the client alone prints no server version).
    pub fn server_version() -> Cmd {
        Cmd::new("docker", ["version", "--format", "{{.Server.Version}}"])
    }

    pub fn build(tag: &str, dockerfile: &Path, context: &Path) -> Cmd {
        Cmd::new(
            "docker",
            [
                "build",
                "--tag",
                tag,
                "--file",
                &path(dockerfile),
                &path(context),
            ],
        )
    }

    pub fn save(image: &str, archive: &Path) -> Cmd {
        Cmd::new("docker", ["save", "--output", &path(archive), image])
    }
}

pub mod kubectl {
    use super::*;

    /// Any kubectl command line (diagnostics).
    pub fn raw<const N: usize>(args: [&str; N]) -> Cmd {
        Cmd::new("kubectl", args)
    }

    pub fn client_version() -> Cmd {
        Cmd::new("kubectl", ["version", "--client"])
    }

    pub fn kustomize(dir: &Path) -> Cmd {
        Cmd::new("kubectl", ["kustomize", &path(dir)])
    }

    /// `kubectl port-forward` to a pod or service: (local, remote) port pairs, loopback only.
    pub fn port_forward(
        context: &str,
        namespace: &str,
        resource: &str,
        ports: &[(u16, u16)],
    ) -> Cmd {
        let mut args: Vec<String> = [
            "--context",
            context,
            "--namespace",
            namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            resource,
        ]
        .map(String::from)
        .to_vec();
        args.extend(
            ports
                .iter()
                .map(|(local, remote)| format!("{local}:{remote}")),
        );
        Cmd::new("kubectl", args)
    }

    pub fn logs(context: &str, namespace: &str, pod: &str, previous: bool) -> Cmd {
        let mut args: Vec<String> = ["--context", context, "--namespace", namespace, "logs", pod]
            .map(String::from)
            .to_vec();
        args.push("--all-containers".into());
        if previous {
            args.push("--previous".into());
        }
        Cmd::new("kubectl", args)
    }

    pub fn events(context: &str) -> Cmd {
        Cmd::new(
            "kubectl",
            [
                "--context",
                context,
                "get",
                "events",
                "--all-namespaces",
                "--sort-by=.lastTimestamp",
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_a_shell_would_split() {
        let cmd = docker::server_version();
        assert_eq!(
            cmd.to_string(),
            "docker version --format '{{.Server.Version}}'"
        );
        let cmd = kind::load_docker_image("c", "camunda-conformance/camunda:e2e");
        assert_eq!(
            cmd.to_string(),
            "kind load docker-image camunda-conformance/camunda:e2e --name c"
        );
    }

    #[test]
    fn cluster_listing_and_the_containerd_failure_are_recognised() {
        assert!(kind::cluster_listed(
            "kind\ncamunda-conformance\n",
            "camunda-conformance"
        ));
        assert!(!kind::cluster_listed(
            "camunda-conformance-2\n",
            "camunda-conformance"
        ));
        assert!(!kind::cluster_listed(
            "No kind clusters found.\n",
            "camunda-conformance"
        ));
        let stderr = "ERROR: failed to load image: command \"docker exec --privileged -i kind-control-plane ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -\" failed with error: exit status 1\nCommand Output: ctr: content digest sha256:0f1e: not found";
        assert!(kind::is_content_digest_failure(stderr));
        assert!(!kind::is_content_digest_failure(
            "ERROR: image: \"x\" not present locally"
        ));
    }
}
