//! The pinned control-plane binaries, built from the Go module proxy into a content-keyed cache
//! under the user's cache directory (`$XDG_CACHE_HOME` or `~/.cache`,
//! `camunda-conformance/controlplane/<key>/`).
//!
//! The key is a hash of every input (pins, Go version, platform, build flags). A build goes to a
//! temp folder beside the cache and is renamed into place only once every binary answered
//! `--version` and its sha256 is recorded; the key's text is stored beside the binaries. A cache
//! entry whose key text or binaries do not match is said to be damaged and rebuilt. "cached"
//! means nothing was rebuilt.
//!
//! `go install` cannot build k8s.io/kubernetes commands (its go.mod replaces the staging
//! modules with local paths); a generated wrapper module that requires k8s.io/kubernetes and
//! every staging module at the matching version can. The same holds for etcd's server module.
//! Each program gets its own wrapper module, so that MVS cannot move one program's
//! dependencies because of another's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::cache::Cache;
use crate::cmd::Cmd;
use crate::pins;

/// Bumped when the layout or the build recipe changes in a way the inputs do not show.
const SCHEMA: &str = "camunda-conformance controlplane cache v2";
/// A cold build of kube-apiserver alone is about 10 minutes on two free cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

pub const BINARIES: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "metrics-server",
];

/// One wrapper module and what it builds.
struct Program {
    /// Folder and wrapper module name.
    name: &'static str,
    module: &'static str,
    version: String,
    /// The version the module's locally replaced siblings are published at.
    sibling_version: fn(&str) -> String,
    packages: &'static [&'static str],
    ldflags: String,
}

fn same_version(version: &str) -> String {
    version.to_string()
}

/// k8s.io/kubernetes vX.Y.Z publishes its staging modules as v0.Y.Z.
fn staging_version(version: &str) -> String {
    format!("v0.{}", version.trim_start_matches("v1."))
}

fn kubernetes_ldflags(version: &str) -> String {
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    // Without these the servers report v0.0.0-master, and clients warn about the skew.
    let pkg = "k8s.io/component-base/version";
    format!(
        "-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean -X {pkg}.buildDate=1970-01-01T00:00:00Z"
    )
}

fn kwok_ldflags() -> String {
    format!(
        "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={}",
        pins::KWOK.trim_start_matches('v')
    )
}

fn metrics_server_ldflags() -> String {
    format!(
        "-s -w -X k8s.io/client-go/pkg/version.gitVersion={}",
        pins::METRICS_SERVER
    )
}

fn plain_ldflags() -> String {
    "-s -w".to_string()
}

/// What a control plane of Kubernetes `kubernetes` is built from.
fn programs(kubernetes: &str) -> [Program; 4] {
    [
        Program {
            name: "kubernetes",
            module: "k8s.io/kubernetes",
            version: kubernetes.to_string(),
            sibling_version: staging_version,
            packages: &[
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
            ],
            ldflags: kubernetes_ldflags(kubernetes),
        },
        Program {
            name: "etcd",
            module: "go.etcd.io/etcd/server/v3",
            version: pins::ETCD.to_string(),
            sibling_version: same_version,
            packages: &["go.etcd.io/etcd/server/v3"],
            ldflags: plain_ldflags(),
        },
        Program {
            name: "kwok",
            module: "sigs.k8s.io/kwok",
            version: pins::KWOK.to_string(),
            sibling_version: same_version,
            packages: &["sigs.k8s.io/kwok/cmd/kwok"],
            ldflags: kwok_ldflags(),
        },
        Program {
            name: "metrics-server",
            module: "sigs.k8s.io/metrics-server",
            version: pins::METRICS_SERVER.to_string(),
            sibling_version: same_version,
            packages: &["sigs.k8s.io/metrics-server/cmd/metrics-server"],
            ldflags: metrics_server_ldflags(),
        },
    ]
}

/// The output name of a package: its last path element, `etcd` for etcd's server module.
fn binary_of(package: &str) -> &str {
    if package == "go.etcd.io/etcd/server/v3" {
        return "etcd";
    }
    package.rsplit('/').next().unwrap_or(package)
}

/// Where the binaries are, once built or found.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

fn go(args: &[&str]) -> Cmd {
    // The pinned toolchain: the installed `go` runs it, fetching it once through the proxy.
    Cmd::new("go", args.iter().copied())
        .env("GOTOOLCHAIN", pins::GO_TOOLCHAIN)
        .timeout(DOWNLOAD_TIMEOUT)
}

/// The pinned Go toolchain and the platform: `go1.26.8 linux/amd64`.
pub fn go_version() -> Result<String> {
    let out = go(&["env", "GOVERSION", "GOOS", "GOARCH"])
        .output()
        .with_context(|| format!("the kwok backend builds its control plane with Go: install Go 1.21 or newer (https://go.dev/dl/ or the distribution's golang-go); it fetches {} itself", pins::GO_TOOLCHAIN))?;
    let fields: Vec<&str> = out.lines().map(str::trim).collect();
    let [version, os, arch] = fields.as_slice() else {
        bail!("`go env GOVERSION GOOS GOARCH` printed {out:?}");
    };
    if *version != pins::GO_TOOLCHAIN {
        bail!(
            "GOTOOLCHAIN={} ran {version}: the installed Go is older than 1.21 and cannot switch toolchains; install Go 1.21 or newer",
            pins::GO_TOOLCHAIN
        );
    }
    Ok(format!("{version} {os}/{arch}"))
}

/// Every input of the build, as text: hashed into the key and stored beside the binaries.
fn key_text(go: &str, kubernetes: &str) -> String {
    let mut text = format!("{SCHEMA}\ngo: {go}\n");
    for program in &programs(kubernetes) {
        let _ = writeln!(
            text,
            "{}: {}@{} packages {} ldflags {:?}",
            program.name,
            program.module,
            program.version,
            program.packages.join(" "),
            program.ldflags
        );
    }
    text.push_str("flags: -trimpath, CGO_ENABLED=0, GOFLAGS=-mod=mod\n");
    text
}

/// The pinned control plane from the cache, built first when missing or damaged.
pub fn ensure() -> Result<Binaries> {
    ensure_kubernetes(pins::KUBERNETES)
}

/// `vX.Y.Z`, as the module proxy names Kubernetes releases.
fn valid_version(version: &str) -> bool {
    let Some(digits) = version.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = digits.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The control plane with Kubernetes `kubernetes` (`vX.Y.Z`) from the cache, built first when
/// missing or damaged.
pub fn ensure_kubernetes(kubernetes: &str) -> Result<Binaries> {
    if !valid_version(kubernetes) || !kubernetes.starts_with("v1.") {
        bail!(
            "Kubernetes version `{kubernetes}`: expected v1.Y.Z, e.g. {}",
            pins::KUBERNETES
        );
    }
    let go = go_version()?;
    let files: Vec<String> = BINARIES.iter().map(|name| format!("bin/{name}")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let cache = Cache {
        name: "controlplane",
        key_text: key_text(&go, kubernetes),
        files: &files,
    };
    let dir = cache.ensure(|out| {
        eprintln!(
            "  control plane: building Kubernetes {kubernetes}, etcd {}, kwok {}, metrics-server {} with {go} into {} (first time: 15-25 minutes on 2 cores, 3-5 GB of Go caches)",
            pins::ETCD,
            pins::KWOK,
            pins::METRICS_SERVER,
            out.display()
        );
        let started = Instant::now();
        build_into(out, kubernetes)?;
        eprintln!(
            "  control plane: built in {:.1} min",
            started.elapsed().as_secs_f64() / 60.0
        );
        Ok(())
    })?;
    Ok(Binaries { dir })
}

fn build_into(out: &Path, kubernetes: &str) -> Result<()> {
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    for program in &programs(kubernetes) {
        let started = Instant::now();
        let src = out.join("src").join(program.name);
        std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
        let gomod = wrapper_go_mod(program)?;
        std::fs::write(src.join("go.mod"), gomod)
            .with_context(|| format!("writing {}/go.mod", src.display()))?;
        let log = out.join(format!("{}.build.log", program.name));
        let mut args = vec![
            "build".to_string(),
            "-trimpath".to_string(),
            "-ldflags".to_string(),
            program.ldflags.clone(),
            "-o".to_string(),
        ];
        args.push(if program.packages.len() == 1 {
            bin.join(binary_of(program.packages[0]))
                .display()
                .to_string()
        } else {
            format!("{}/", bin.display())
        });
        args.extend(program.packages.iter().map(|p| p.to_string()));
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        eprintln!(
            "  building {} {} (log {})",
            program.module,
            program.version,
            log.display()
        );
        go(&arg_refs)
            .env("GOFLAGS", "-mod=mod")
            .env("CGO_ENABLED", "0")
            .dir(&src)
            .nice()
            .timeout(BUILD_TIMEOUT)
            .run_logged(&log)
            .with_context(|| format!("building {}@{}", program.module, program.version))?;
        eprintln!(
            "  built {} in {:.1} min",
            program
                .packages
                .iter()
                .map(|p| binary_of(p))
                .collect::<Vec<_>>()
                .join(", "),
            started.elapsed().as_secs_f64() / 60.0
        );
    }
    for name in BINARIES {
        let version = Cmd::new(bin.join(name).display().to_string(), ["--version"])
            .timeout(Duration::from_secs(30))
            .output()
            .with_context(|| format!("{name} --version: the build is not usable"))?;
        if name.starts_with("kube-") && !version.contains(kubernetes) {
            bail!("{name} reports {version:?}, not {kubernetes}");
        }
    }
    Ok(())
}

/// `module camunda-conformance/<name>` requiring the program's module and, at the matching
/// version, every sibling its go.mod replaces with a local path.
fn wrapper_go_mod(program: &Program) -> Result<String> {
    let upstream = module_go_mod(program.module, &program.version)?;
    let siblings = local_replacements(&upstream);
    let sibling_version = (program.sibling_version)(&program.version);
    let mut text = format!(
        "// Generated by cargo xtask (kwok backend): builds {}@{} with its siblings at matching versions.\nmodule camunda-conformance/{}\n\ngo {}\n\nrequire (\n\t{} {}\n",
        program.module,
        program.version,
        program.name,
        pins::GO_TOOLCHAIN.trim_start_matches("go"),
        program.module,
        program.version
    );
    for sibling in siblings {
        let _ = writeln!(text, "\t{sibling} {sibling_version}");
    }
    text.push_str(")\n");
    Ok(text)
}

/// The go.mod of `module@version`, through the module proxy (cached by Go).
fn module_go_mod(module: &str, version: &str) -> Result<String> {
    let info = download(module, version)?;
    let path = info["GoMod"]
        .as_str()
        .ok_or_else(|| anyhow!("`go mod download` named no go.mod for {module}@{version}"))?;
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

/// `go mod download -json module@version`: the module in Go's verified module cache.
pub fn download(module: &str, version: &str) -> Result<serde_json::Value> {
    let spec = format!("{module}@{version}");
    let temp = tempfile::tempdir().context("creating a scratch folder for go mod download")?;
    // Outside any module: `go mod download` then fetches exactly the named version.
    let out = go(&["mod", "download", "-json", &spec])
        .dir(temp.path())
        .timeout(DOWNLOAD_TIMEOUT)
        .capture()?;
    let info: serde_json::Value = serde_json::from_str(&out.stdout).with_context(|| {
        format!(
            "`go mod download -json {spec}` printed no JSON: {}",
            out.stderr.trim()
        )
    })?;
    if let Some(error) = info["Error"].as_str() {
        bail!("go mod download {spec}: {error}");
    }
    if !out.success {
        bail!("go mod download {spec}: {}", out.stderr.trim());
    }
    Ok(info)
}

/// The modules a go.mod replaces with a local path (`=> ./staging/...`, `=> ../api`), minus
/// examples the proxy does not serve and no binary imports (k8s.io/sample-*).
fn local_replacements(go_mod: &str) -> Vec<String> {
    let mut modules: Vec<String> = go_mod
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("replace").trim();
            let (left, right) = line.split_once("=>")?;
            let target = right.trim();
            // etcd fences off modules it must never depend on with `=> ./FORBIDDEN_DEPENDENCY`.
            let local = (target.starts_with("./") || target.starts_with("../"))
                && !target.contains("FORBIDDEN_DEPENDENCY");
            local
                .then(|| left.split_whitespace().next().map(str::to_string))
                .flatten()
        })
        .filter(|module| !module.starts_with("k8s.io/sample-"))
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

/// The directory of `module@version` in the module cache, downloaded when missing.
pub fn module_dir(module: &str, version: &str) -> Result<PathBuf> {
    let info = download(module, version)?;
    info["Dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("`go mod download` named no folder for {module}@{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_and_sibling_modules_come_from_local_replacements() {
        let go_mod = "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller\n\tgithub.com/x/y => github.com/x/z v1.0.0\n)\nreplace go.etcd.io/etcd/api/v3 => ../api\nreplace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY\n";
        assert_eq!(
            local_replacements(go_mod),
            ["go.etcd.io/etcd/api/v3", "k8s.io/api"]
        );
        assert_eq!(staging_version("v1.36.3"), "v0.36.3");
        assert_eq!(
            binary_of("k8s.io/kubernetes/cmd/kube-apiserver"),
            "kube-apiserver"
        );
        assert_eq!(binary_of("go.etcd.io/etcd/server/v3"), "etcd");
        assert!(valid_version("v1.35.4") && !valid_version("1.35.4") && !valid_version("v1.35"));
    }

    #[test]
    fn the_cache_key_names_every_input() {
        let text = key_text("go1.26.8 linux/amd64", pins::KUBERNETES);
        assert!(text.starts_with(SCHEMA));
        assert!(text.contains("go1.26.8"));
        for pin in [
            pins::KUBERNETES,
            pins::ETCD,
            pins::KWOK,
            pins::METRICS_SERVER,
        ] {
            assert!(text.contains(pin), "{pin} is not in the key");
        }
        assert_ne!(text, key_text("go1.26.8 linux/amd64", "v1.35.4"));
        assert_ne!(text, key_text("go1.26.9 linux/amd64", pins::KUBERNETES));
    }
}
