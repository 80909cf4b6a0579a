//! What the node changes on the host, and how each change is put back: the preflight that says
//! what is missing before anything is touched, the network namespace and its veth link, the
//! cgroup folders, the mounts under the run's folder, the sysctls the kubelet sets, the host
//! folders the kubelet and containerd create whatever their flags, and the leak check that
//! proves all of it is gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::net;
use camunda_conformance_controlplane::cmd::Cmd;

/// The kernel-wide sysctls the kubelet sets when `protectKernelDefaults` is false (the only way
/// it starts on a host whose defaults differ); restored at teardown.
pub const KUBELET_SYSCTLS: [&str; 3] = [
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
];

/// Host folders the kubelet, containerd or `ip netns` create whatever their flags (device
/// plugins, the flex-volume folder, the shims' sockets, libcni's cache, netns mounts): removed
/// at teardown when the run created them.
pub const HOST_DIRS: [&str; 6] = [
    "/var/lib/kubelet",
    "/usr/libexec/kubernetes",
    "/run/containerd",
    "/var/lib/cni",
    "/run/netns",
    "/etc/cni",
];

/// cgroup v1 controllers the kubelet uses (each gets the node's cgroup root).
const CGROUP_V1: &str = "/sys/fs/cgroup";

/// What the host looked like before the node started: enough for `--down` to put it back.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Before {
    /// (name, value) as read before the kubelet started.
    pub sysctls: Vec<(String, String)>,
    /// Host folders of [`HOST_DIRS`] that did not exist.
    pub absent_dirs: Vec<PathBuf>,
}

impl Before {
    pub fn record() -> Result<Self> {
        let mut sysctls = Vec::new();
        for name in KUBELET_SYSCTLS {
            sysctls.push((name.to_string(), read_sysctl(name)?));
        }
        let absent_dirs = HOST_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|d| !d.exists())
            .collect();
        Ok(Self {
            sysctls,
            absent_dirs,
        })
    }

    /// Puts the sysctls back and removes the host folders the run created; returns what it
    /// could not do.
    pub fn restore(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in &self.sysctls {
            if let Err(err) = write_sysctl(name, value) {
                problems.push(format!("restoring {name}={value}: {err:#}"));
            }
        }
        for dir in &self.absent_dirs {
            if dir.exists() {
                // `ip netns add` makes /run/netns a mount point of its own.
                problems.extend(unmount_all_under(dir));
                if let Err(err) = std::fs::remove_dir_all(dir) {
                    problems.push(format!("removing {}: {err}", dir.display()));
                }
            }
        }
        problems
    }
}

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

pub fn read_sysctl(name: &str) -> Result<String> {
    let path = sysctl_path(name);
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

fn write_sysctl(name: &str, value: &str) -> Result<()> {
    let path = sysctl_path(name);
    std::fs::write(&path, value).with_context(|| format!("writing {}", path.display()))
}

/// Everything the node needs of the host, checked before anything is touched: each missing
/// piece named with what provides it. An error here is a usage error (exit 2).
pub fn preflight() -> Result<()> {
    let mut missing = Vec::new();
    if !cfg!(target_os = "linux") {
        bail!("the node backend runs a kubelet on the host: it needs Linux");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the node backend runs containerd and a kubelet on the host: run it as root (network namespaces, mounts, cgroups)");
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.contains("overlay") {
        missing.push("overlayfs in the kernel (containerd's snapshotter)".to_string());
    }
    if !Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        missing.push(
            "br_netfilter in the kernel (/proc/sys/net/bridge: Service traffic between pods on the bridge)"
                .to_string(),
        );
    }
    if !Path::new(CGROUP_V1)
        .join("memory")
        .join("memory.limit_in_bytes")
        .exists()
    {
        missing.push(format!(
            "cgroup v1 controllers under {CGROUP_V1} (cpu, memory, pids, ...): the only layout this backend has been proven on"
        ));
    }
    for (path, package) in [
        ("/usr/bin/containerd", "containerd"),
        ("/usr/bin/ctr", "containerd"),
        ("/usr/sbin/runc", "runc"),
        ("/usr/lib/cni/bridge", "containernetworking-plugins"),
        ("/usr/lib/cni/host-local", "containernetworking-plugins"),
        ("/usr/lib/cni/loopback", "containernetworking-plugins"),
        ("/usr/lib/cni/portmap", "containernetworking-plugins"),
        ("/usr/sbin/ip", "iproute2"),
        ("/usr/sbin/iptables", "iptables"),
        ("/usr/bin/nsenter", "util-linux"),
        ("/usr/sbin/debootstrap", "debootstrap"),
        ("/usr/bin/umoci", "umoci"),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{path} (Debian package {package})"));
        }
    }
    if !missing.is_empty() {
        bail!(
            "the node backend cannot start on this host; missing:\n  - {}\ninstall the packages with `apt-get install containerd runc containernetworking-plugins iproute2 iptables debootstrap umoci`",
            missing.join("\n  - ")
        );
    }
    if net::namespace_exists() {
        bail!(
            "network namespace {} exists already: a kept node runs (stop it with `cargo xtask e2e --backend node --down`) or an earlier run was killed before its cleanup",
            net::NETNS
        );
    }
    Ok(())
}

/// The cgroup hierarchies mounted on this host: the v1 controllers (cpu, memory, pids, ...)
/// and the hybrid layout's empty cgroup2 at `unified`, where the kubelet also makes its folders.
fn cgroup_controllers() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(CGROUP_V1) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .filter(|p| !p.is_symlink())
        .collect();
    dirs.sort();
    dirs
}

/// Creates the node's cgroup root under every controller (the kubelet expects it to exist).
pub fn create_cgroup_root(root: &str) -> Result<()> {
    for controller in cgroup_controllers() {
        let dir = controller.join(root.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// The folders under the node's cgroup root, deepest first.
fn cgroup_dirs(root: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&path, out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    let mut out = Vec::new();
    for controller in cgroup_controllers() {
        let dir = controller.join(root.trim_start_matches('/'));
        if dir.is_dir() {
            walk(&dir, &mut out);
        }
    }
    out
}

/// The processes still in the node's cgroups (containers the runtime did not stop).
pub fn cgroup_pids(root: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroup_dirs(root)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Kills every process left in the node's cgroups, then removes the folders; returns what it
/// could not remove.
pub fn remove_cgroup_root(root: &str) -> Vec<String> {
    for _ in 0..50 {
        let pids = cgroup_pids(root);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: signals a process of the node's own cgroups.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut problems = Vec::new();
    for dir in cgroup_dirs(root) {
        // A cgroup folder goes with rmdir (its files are the kernel's).
        if let Err(err) = std::fs::remove_dir(&dir) {
            problems.push(format!("removing {}: {err}", dir.display()));
        }
    }
    problems
}

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    points
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(byte as char);
                continue;
            }
            out.push(c);
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// Detaches every mount at or under `dir` (overlay rootfs, shm, tmpfs volumes, netns files, the
/// kubelet's own bind mount of its root); returns what stayed mounted.
pub fn unmount_all_under(dir: &Path) -> Vec<String> {
    for _ in 0..5 {
        let points = mounts_under(dir);
        if points.is_empty() {
            return Vec::new();
        }
        for point in points {
            let Ok(c) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: a valid C string; MNT_DETACH never blocks on busy mounts.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    mounts_under(dir)
        .into_iter()
        .map(|p| format!("still mounted: {}", p.display()))
        .collect()
}

/// Processes whose command line mentions `needle` (containerd's shims name its socket).
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// What is left of a node on this host: empty when nothing is.
pub fn leaks(run_dir: Option<&Path>, cgroup_root: &str, before: &Before) -> Vec<String> {
    let mut left = Vec::new();
    if net::namespace_exists() {
        left.push(format!("network namespace {}", net::NETNS));
    }
    if net::host_link_exists() {
        left.push(format!("link {}", net::HOST_LINK));
    }
    if let Some(dir) = run_dir {
        for point in mounts_under(dir) {
            left.push(format!("mount {}", point.display()));
        }
        if dir.exists() {
            left.push(format!("folder {}", dir.display()));
        }
        let pids = processes_mentioning(&dir.display().to_string());
        if !pids.is_empty() {
            left.push(format!("processes {pids:?} naming {}", dir.display()));
        }
    }
    for dir in cgroup_dirs(cgroup_root) {
        left.push(format!("cgroup {}", dir.display()));
    }
    for (name, value) in &before.sysctls {
        match read_sysctl(name) {
            Ok(now) if &now == value => {}
            Ok(now) => left.push(format!("sysctl {name}={now} (was {value})")),
            Err(err) => left.push(format!("sysctl {name}: {err:#}")),
        }
    }
    for dir in &before.absent_dirs {
        if dir.exists() {
            left.push(format!("host folder {}", dir.display()));
        }
    }
    left
}

/// `ip ARGS`, bounded.
pub fn ip(args: &[&str]) -> Cmd {
    Cmd::new("ip", args.iter().copied()).timeout(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_read_back() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/odd\\x"), "/odd\\x");
    }

    #[test]
    fn sysctl_names_map_to_proc_paths() {
        assert_eq!(
            sysctl_path("vm.overcommit_memory"),
            Path::new("/proc/sys/vm/overcommit_memory")
        );
    }
}
