//! A Debian root file system as a build stage: `/proc` mounted for apt and dpkg (unmounted by a
//! guard, also on error), no services started (`policy-rc.d` 101), the host's name resolution
//! and the host's apt lists (so that apt in the chroot resolves exactly the versions the host's
//! `apt-cache policy` names, the ones the cache keys hold), cleaned before the layer is repacked.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use camunda_conformance_controlplane::cmd::Cmd;

/// The host's apt sources: copied into every image, and their lists with them.
pub const HOST_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const HOST_LISTS: &str = "/var/lib/apt/lists";
/// An apt install of a JRE or PostgreSQL, downloads included.
const APT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// `/proc` mounted in a root file system; unmounted when dropped (lazily, so that it never
/// stays), or checked by [`ProcMount::unmount`] before the root file system is repacked.
pub struct ProcMount {
    target: Option<PathBuf>,
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).context("a path without NUL bytes")
}

impl ProcMount {
    pub fn mount(rootfs: &Path) -> Result<Self> {
        let target = rootfs.join("proc");
        std::fs::create_dir_all(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let (source, fstype) = (CString::new("proc")?, CString::new("proc")?);
        let c_target = c_path(&target)?;
        // SAFETY: plain C strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                c_target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mounting /proc on {}", target.display()));
        }
        Ok(Self {
            target: Some(target),
        })
    }

    /// Unmounts, and fails when it cannot (a root file system with a mount in it is never
    /// repacked).
    pub fn unmount(mut self) -> Result<()> {
        let Some(target) = self.target.take() else {
            return Ok(());
        };
        let c_target = c_path(&target)?;
        // SAFETY: a C string that outlives the call.
        if unsafe { libc::umount2(c_target.as_ptr(), 0) } != 0 {
            let err = std::io::Error::last_os_error();
            // SAFETY: as above; detached, it is gone once nothing uses it.
            unsafe { libc::umount2(c_target.as_ptr(), libc::MNT_DETACH) };
            return Err(err).with_context(|| format!("unmounting {}", target.display()));
        }
        Ok(())
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            if let Ok(c_target) = c_path(&target) {
                // SAFETY: a C string that outlives the call.
                unsafe { libc::umount2(c_target.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Detaches every mount at or under `dir`, innermost first (after a failed debootstrap, or
/// before a build folder is removed or kept).
pub fn detach_all_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|point| Path::new(point).starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        if let Ok(c_point) = CString::new(point) {
            // SAFETY: a C string that outlives the call.
            unsafe { libc::umount2(c_point.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Fails when anything is mounted at or under `dir` (checked before repacking or removing it).
pub fn ensure_nothing_mounted(dir: &Path) -> Result<()> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for line in mounts.lines() {
        if let Some(point) = line.split_whitespace().nth(1) {
            // Octal escapes (spaces) do not matter: our build paths have none.
            if Path::new(point).starts_with(&dir) {
                bail!("{point} is still mounted");
            }
        }
    }
    Ok(())
}

/// Prepares a root file system for apt: the host's sources and lists, name resolution, no
/// services.
pub fn prepare(rootfs: &Path) -> Result<()> {
    let sources =
        std::fs::read_to_string(HOST_SOURCES).with_context(|| format!("reading {HOST_SOURCES}"))?;
    let etc_apt = rootfs.join("etc/apt");
    // debootstrap's own one-line sources.list would duplicate the suite.
    remove_if_present(&etc_apt.join("sources.list"))?;
    write(
        &etc_apt.join("sources.list.d/debian.sources"),
        &sources,
        0o644,
    )?;
    let lists = rootfs.join("var/lib/apt/lists");
    std::fs::create_dir_all(lists.join("partial"))
        .with_context(|| format!("creating {}", lists.display()))?;
    let mut copied = 0;
    for entry in std::fs::read_dir(HOST_LISTS).with_context(|| format!("reading {HOST_LISTS}"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = name.contains("_Packages")
            || name.ends_with("Release")
            || name.ends_with("Release.gpg");
        if wanted && entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), lists.join(&name))
                .with_context(|| format!("copying {}", entry.path().display()))?;
            copied += 1;
        }
    }
    if copied == 0 {
        bail!("{HOST_LISTS} holds no package lists: run `apt-get update` on the host first");
    }
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv_path = rootfs.join("etc/resolv.conf");
    remove_if_present(&resolv_path)?;
    write(&resolv_path, &resolv, 0o644)?;
    write(
        &rootfs.join("usr/sbin/policy-rc.d"),
        "#!/bin/sh\n# No services start while images are built.\nexit 101\n",
        0o755,
    )
}

/// What [`prepare`] added and what apt leaves behind, removed (run inside the chroot).
pub const CLEANUP: &str = "apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
  /var/cache/apt/archives/partial/* /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log \
  /var/cache/debconf/*-old /var/lib/dpkg/*-old /usr/sbin/policy-rc.d /tmp/* /var/tmp/*
: > /etc/resolv.conf
echo localhost > /etc/hostname";

/// Runs a shell script in the chroot (logged, bounded).
pub fn run(rootfs: &Path, script: &str, log: &Path) -> Result<()> {
    Cmd::new(
        "chroot",
        [
            rootfs.to_string_lossy().into_owned(),
            "/bin/sh".into(),
            "-eux".into(),
            "-c".into(),
            script.to_string(),
        ],
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .env("LC_ALL", "C")
    .env("HOME", "/root")
    .env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    .timeout(APT_TIMEOUT)
    .nice()
    .run_logged(log)
}

/// The packages installed in a root file system (`ii`), with their versions.
pub fn installed(rootfs: &Path) -> Result<BTreeMap<String, String>> {
    let out = Cmd::new(
        "chroot",
        [
            rootfs.to_string_lossy().as_ref(),
            "dpkg-query",
            "-W",
            "-f",
            "${db:Status-Abbrev} ${Package} ${Version}\n",
        ],
    )
    .output()?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "ii").then_some(())?;
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect())
}

/// Fails when an installed package's version differs from the one its cache key holds.
pub fn check_versions(
    installed: &BTreeMap<String, String>,
    expected: &BTreeMap<String, String>,
) -> Result<()> {
    let differing: Vec<String> = installed
        .iter()
        .filter_map(|(name, version)| {
            let want = expected.get(name)?;
            (want != version).then(|| format!("{name} {version} (the key says {want})"))
        })
        .collect();
    if !differing.is_empty() {
        bail!(
            "installed versions differ from the host's apt candidates the cache key was made of \
             (are the host's apt lists older than the mirror? run `apt-get update`): {}",
            differing.join(", ")
        );
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

pub fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
