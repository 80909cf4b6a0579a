//! OCI layouts with umoci: every layer is made by umoci (`unpack`/`repack` around a chroot,
//! `insert` for files), the configuration by `umoci config`, and a layout travels as a plain
//! `tar` of its folder (an OCI archive, which `ctr images import` reads).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use camunda_conformance_controlplane::cmd::Cmd;

/// The tag a layout is built under; the final image is retagged with its full reference.
pub const BUILD_TAG: &str = "build";
const TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// An image's runtime configuration (`umoci config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `uid:gid`, numeric (the kubelet's runAsNonRoot check needs a number).
    pub user: String,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub ports: Vec<String>,
    pub stop_signal: Option<String>,
}

impl Config {
    /// The arguments of `umoci config` that set it all.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["--clear=config.entrypoint", "--clear=config.cmd"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        for value in &self.entrypoint {
            args.push(format!("--config.entrypoint={value}"));
        }
        for value in &self.cmd {
            args.push(format!("--config.cmd={value}"));
        }
        args.push(format!("--config.user={}", self.user));
        for value in &self.env {
            args.push(format!("--config.env={value}"));
        }
        if let Some(dir) = &self.workdir {
            args.push(format!("--config.workingdir={dir}"));
        }
        for port in &self.ports {
            args.push(format!("--config.exposedports={port}"));
        }
        if let Some(signal) = &self.stop_signal {
            args.push(format!("--config.stopsignal={signal}"));
        }
        args
    }
}

/// A layout folder being built, and the log its commands write to.
pub struct Layout<'a> {
    pub dir: &'a Path,
    pub log: &'a Path,
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Layout<'_> {
    fn image(&self) -> String {
        format!("{}:{BUILD_TAG}", self.dir.display())
    }

    fn umoci<S: Into<String>>(&self, args: impl IntoIterator<Item = S>) -> Result<()> {
        Cmd::new("umoci", args)
            .timeout(TIMEOUT)
            .nice()
            .run_logged(self.log)
    }

    /// A new layout holding one empty image.
    pub fn init(&self) -> Result<()> {
        self.umoci(["init".to_string(), "--layout".into(), path(self.dir)])?;
        self.umoci(["new".to_string(), "--image".into(), self.image()])
    }

    /// The layout of an archive made by [`Layout::archive`].
    pub fn extract(&self, archive: &Path) -> Result<()> {
        std::fs::create_dir_all(self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        Cmd::new(
            "tar",
            [
                "-xf".to_string(),
                path(archive),
                "-C".into(),
                path(self.dir),
            ],
        )
        .timeout(TIMEOUT)
        .run_logged(self.log)
    }

    pub fn unpack(&self, bundle: &Path) -> Result<()> {
        self.umoci([
            "unpack".to_string(),
            "--image".into(),
            self.image(),
            path(bundle),
        ])
    }

    /// A new layer holding what changed in the bundle's root file system.
    pub fn repack(&self, bundle: &Path, created_by: &str) -> Result<()> {
        self.umoci([
            "repack".to_string(),
            "--image".into(),
            self.image(),
            format!("--history.created_by={created_by}"),
            path(bundle),
        ])
    }

    /// A new layer holding `source` (mode and owner as they are) at `target`.
    pub fn insert(&self, source: &Path, target: &str) -> Result<()> {
        self.umoci([
            "insert".to_string(),
            "--image".into(),
            self.image(),
            format!("--history.created_by=insert {target}"),
            path(source),
            target.to_string(),
        ])
    }

    pub fn config(&self, config: &Config) -> Result<()> {
        let mut args = vec!["config".to_string(), "--image".into(), self.image()];
        args.extend(config.args());
        self.umoci(args)
    }

    /// Names the image `reference` (the only name left in the layout) and drops unused blobs.
    pub fn finish(&self, reference: &str) -> Result<()> {
        self.umoci([
            "tag".to_string(),
            "--image".into(),
            self.image(),
            reference.to_string(),
        ])?;
        self.umoci(["rm".to_string(), "--image".into(), self.image()])?;
        self.gc()
    }

    pub fn gc(&self) -> Result<()> {
        self.umoci(["gc".to_string(), "--layout".into(), path(self.dir)])
    }

    /// The layout as an OCI archive (a tar of the folder's contents).
    pub fn archive(&self, archive: &Path) -> Result<()> {
        Cmd::new(
            "tar",
            [
                "--sort=name".to_string(),
                "-cf".into(),
                path(archive),
                "-C".into(),
                path(self.dir),
                "oci-layout".into(),
                "index.json".into(),
                "blobs".into(),
            ],
        )
        .timeout(TIMEOUT)
        .run_logged(self.log)
    }
}

/// `umoci --version`, for the cache keys.
pub fn umoci_version() -> Result<String> {
    let out = Cmd::new("umoci", ["--version"]).output()?;
    Ok(out.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_arguments_set_every_field_and_clear_the_inherited_ones() {
        let config = Config {
            entrypoint: vec![
                "redis-server".into(),
                "--protected-mode".into(),
                "no".into(),
            ],
            cmd: vec![],
            user: "999:999".into(),
            env: vec!["A=b c".into()],
            workdir: Some("/data".into()),
            ports: vec!["6379/tcp".into()],
            stop_signal: Some("SIGINT".into()),
        };
        let args = config.args();
        assert_eq!(
            args[..2],
            ["--clear=config.entrypoint", "--clear=config.cmd"]
        );
        for expected in [
            "--config.entrypoint=redis-server",
            "--config.entrypoint=--protected-mode",
            "--config.entrypoint=no",
            "--config.user=999:999",
            "--config.env=A=b c",
            "--config.workingdir=/data",
            "--config.exposedports=6379/tcp",
            "--config.stopsignal=SIGINT",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
    }
}
