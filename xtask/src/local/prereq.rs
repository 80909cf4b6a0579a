//! Every program the local stack runs, found up front; missing ones are listed with the exact
//! install command, and installed with apt-get when we are root on Debian/Ubuntu.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// (program, Debian package that ships it)
const PROGRAMS: [(&str, &str); 7] = [
    ("java", "openjdk-17-jdk-headless"),
    ("mvn", "maven"),
    ("initdb", "postgresql"),
    ("redis-server", "redis-server"),
    ("nutcracker", "nutcracker"),
    ("nginx", "nginx-light"),
    ("prometheus", "prometheus"),
];

/// Absolute paths of the programs the stack runs.
#[derive(Clone, Debug)]
pub struct Programs {
    pub java: PathBuf,
    pub mvn: PathBuf,
    /// PostgreSQL's bin directory (initdb, postgres, pg_isready, createdb).
    pub pg_bin: PathBuf,
    pub redis: PathBuf,
    pub nutcracker: PathBuf,
    pub nginx: PathBuf,
    pub prometheus: PathBuf,
}

pub fn install_command(packages: &[&str]) -> String {
    format!("apt-get install -y {}", packages.join(" "))
}

/// Finds every program; installs the missing ones when it can, else fails listing them.
pub fn ensure() -> Result<Programs> {
    let missing = missing_packages();
    if missing.is_empty() {
        return locate();
    }
    let command = install_command(&missing);
    let root = is_root();
    let apt = Path::new("/usr/bin/apt-get").exists() && Path::new("/etc/debian_version").exists();
    if !(root && apt) {
        bail!(
            "the local backend needs programs that are not installed: {}\ninstall them with:\n  sudo apt-get update && sudo {command}",
            missing.join(", ")
        );
    }
    println!(
        "prerequisites missing: {}; installing them (root on Debian/Ubuntu)",
        missing.join(", ")
    );
    run_apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    // Debian starts a packaged service on install (postgres on 5432, nginx on 80, ...); the
    // stack runs its own instances, so forbid that unless a policy is already in place.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            policy,
            "#!/bin/sh\n# written by cargo xtask e2e during apt-get install\nexit 101\n",
        )
        .context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let installed = run_apt(&args);
    if own_policy {
        std::fs::remove_file(policy).context("removing /usr/sbin/policy-rc.d")?;
    }
    installed?;
    let still = missing_packages();
    if !still.is_empty() {
        bail!("still missing after apt-get: {}", still.join(", "));
    }
    locate()
}

fn run_apt(args: &[&str]) -> Result<()> {
    println!("+ apt-get {}", args.join(" "));
    let mut apt = Command::new("apt-get");
    apt.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    // Package lists and a handful of server packages: minutes, not half an hour.
    let status = crate::command::status(apt, "apt-get", std::time::Duration::from_secs(1800))?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn missing_packages() -> Vec<&'static str> {
    PROGRAMS
        .iter()
        .filter(|(program, _)| find(program).is_none())
        .map(|(_, package)| *package)
        .collect()
}

fn locate() -> Result<Programs> {
    let get = |name: &str| find(name).with_context(|| format!("{name} not found"));
    let initdb = get("initdb")?;
    let pg_bin = initdb
        .parent()
        .context("initdb has no parent directory")?
        .to_path_buf();
    Ok(Programs {
        java: get("java")?,
        mvn: get("mvn")?,
        pg_bin,
        redis: get("redis-server")?,
        nutcracker: get("nutcracker")?,
        nginx: get("nginx")?,
        prometheus: get("prometheus")?,
    })
}

/// PATH plus the sbin directories (CI's PATH may lack them) and, for PostgreSQL, Debian's
/// versioned bin directory (newest version first).
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    if name == "initdb" {
        dirs = postgres_bin_dirs();
    }
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_command_names_every_package() {
        let all: Vec<&str> = PROGRAMS.iter().map(|(_, p)| *p).collect();
        assert_eq!(
            install_command(&all),
            "apt-get install -y openjdk-17-jdk-headless maven postgresql redis-server nutcracker nginx-light prometheus"
        );
    }

    #[test]
    fn finds_a_program_that_exists_and_not_one_that_does_not() {
        assert!(find("sh").is_some());
        assert!(find("surely-not-a-program-xyz").is_none());
    }
}
