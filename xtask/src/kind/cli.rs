//! The external programs the kind backend drives (kind, docker, kubectl), as typed commands that
//! the plan can print and the executor can run: one place that knows their command lines.

use std::path::Path;
use std::time::Duration;

pub use camunda_conformance_controlplane::cmd::Cmd;

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
        .timeout(Duration::from_secs(600))
    }

    pub fn delete_cluster(name: &str) -> Cmd {
        Cmd::new("kind", ["delete", "cluster", "--name", name]).timeout(Duration::from_secs(300))
    }

    pub fn get_clusters() -> Cmd {
        Cmd::new("kind", ["get", "clusters"])
    }

    pub fn load_docker_image(cluster: &str, image: &str) -> Cmd {
        Cmd::new("kind", ["load", "docker-image", image, "--name", cluster])
            .timeout(Duration::from_secs(600))
    }

    pub fn load_image_archive(cluster: &str, archive: &Path) -> Cmd {
        Cmd::new(
            "kind",
            ["load", "image-archive", &path(archive), "--name", cluster],
        )
        .timeout(Duration::from_secs(600))
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

    /// `build_args`: `NAME=VALUE` each, passed as `--build-arg`.
    pub fn build(tag: &str, dockerfile: &Path, build_args: &[String], context: &Path) -> Cmd {
        let mut args = vec!["build".to_string(), "--tag".into(), tag.into()];
        for arg in build_args {
            args.push("--build-arg".into());
            args.push(arg.clone());
        }
        args.extend(["--file".into(), path(dockerfile), path(context)]);
        Cmd::new("docker", args).timeout(Duration::from_secs(1800))
    }

    /// One platform only: `kind load docker-image` fails on Docker's containerd image store
    /// because a multi-platform save names attestation manifests and platforms whose content
    /// is not local; saving just the host's platform leaves only content that exists.
    pub fn save(image: &str, platform: &str, archive: &Path) -> Cmd {
        Cmd::new(
            "docker",
            [
                "save",
                "--platform",
                platform,
                "--output",
                &path(archive),
                image,
            ],
        )
        .timeout(Duration::from_secs(600))
    }

    /// `os/arch` of the engine, the platform the image was built for.
    pub fn platform() -> Cmd {
        Cmd::new(
            "docker",
            ["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"],
        )
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
