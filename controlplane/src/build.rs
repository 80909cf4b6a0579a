//! The pinned control-plane binaries ([`ensure`]) and the node backend's addons
//! ([`ensure_node_addons`]), built from the Go module proxy into content-keyed caches under the
//! user's cache directory (`$XDG_CACHE_HOME` or `~/.cache`,
//! `camunda-conformance/controlplane/<key>/` and `camunda-conformance/node-addons/<key>/`).
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
//! dependencies because of another's. A wrapper repeats the non-local `replace` and the
//! `exclude` lines of the program's go.mod (Traefik replaces two modules with forks), which
//! apply only in a main module.

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

/// What [`ensure`] builds, in `bin/`.
pub const BINARIES: [&str; 8] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kwok",
    "metrics-server",
];

/// What [`ensure_node_addons`] builds, in `bin/`.
pub const NODE_ADDON_BINARIES: [&str; 5] = [
    "prometheus",
    "coredns",
    "traefik",
    "prometheus-operator",
    "prometheus-config-reloader",
];

/// One wrapper module and what it builds.
struct Program {
    /// Folder and wrapper module name.
    name: &'static str,
    module: &'static str,
    version: String,
    /// The version the module's locally replaced siblings are published at.
    sibling_version: fn(&str) -> String,
    /// Siblings the module proxy does not serve at that version: `(module, version)`, each
    /// replaced by that published version of itself.
    sibling_overrides: &'static [(&'static str, &'static str)],
    /// `(module, version)` its go.mod must require: pins of files the backend reads from that
    /// module, which must match what the program was built against.
    requires: &'static [(&'static str, &'static str)],
    packages: &'static [&'static str],
    ldflags: String,
    /// The argument that makes each of its binaries print its version, which must show
    /// `version` (with or without its `v`).
    version_arg: &'static str,
    /// The release the binary reports when it differs from the module version (Prometheus 3.x
    /// publishes its Go module as v0.3xx.y); empty: the module version.
    reports: &'static str,
}

impl Program {
    fn new(name: &'static str, module: &'static str, version: &str) -> Self {
        Program {
            name,
            module,
            version: version.to_string(),
            sibling_version: same_version,
            sibling_overrides: &[],
            requires: &[],
            packages: &[],
            ldflags: plain_ldflags(),
            version_arg: "--version",
            reports: "",
        }
    }
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

/// `-s -w` and `-X` of each `variable=value`.
fn ldflags_setting(variables: &[(&str, &str)]) -> String {
    let mut flags = plain_ldflags();
    for (variable, value) in variables {
        let _ = write!(flags, " -X {variable}={value}");
    }
    flags
}

fn plain_ldflags() -> String {
    "-s -w".to_string()
}

/// What a control plane of Kubernetes `kubernetes` is built from: one Kubernetes version for
/// the whole cluster, the kubelet and kube-proxy of the node backend included.
fn programs(kubernetes: &str) -> Vec<Program> {
    vec![
        Program {
            sibling_version: staging_version,
            packages: &[
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
                "k8s.io/kubernetes/cmd/kubelet",
                "k8s.io/kubernetes/cmd/kube-proxy",
            ],
            ldflags: kubernetes_ldflags(kubernetes),
            ..Program::new("kubernetes", "k8s.io/kubernetes", kubernetes)
        },
        Program {
            packages: &["go.etcd.io/etcd/server/v3"],
            ..Program::new("etcd", "go.etcd.io/etcd/server/v3", pins::ETCD)
        },
        Program {
            packages: &["sigs.k8s.io/kwok/cmd/kwok"],
            ldflags: ldflags_setting(&[(
                "sigs.k8s.io/kwok/pkg/consts.Version",
                pins::KWOK.trim_start_matches('v'),
            )]),
            ..Program::new("kwok", "sigs.k8s.io/kwok", pins::KWOK)
        },
        Program {
            packages: &["sigs.k8s.io/metrics-server/cmd/metrics-server"],
            ldflags: ldflags_setting(&[(
                "k8s.io/client-go/pkg/version.gitVersion",
                pins::METRICS_SERVER,
            )]),
            ..Program::new(
                "metrics-server",
                "sigs.k8s.io/metrics-server",
                pins::METRICS_SERVER,
            )
        },
    ]
}

const PROMETHEUS_OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator";

/// What the node backend's addons are built from.
fn node_addon_programs() -> Vec<Program> {
    vec![
        Program {
            // Debian's Prometheus (2.42) is built without Kubernetes service discovery, which
            // the Prometheus Operator's configuration needs. Without the `builtinassets` tag the
            // web UI is left out; the HTTP API, /-/ready and /-/reload work.
            packages: &["github.com/prometheus/prometheus/cmd/prometheus"],
            ldflags: ldflags_setting(&[(
                "github.com/prometheus/common/version.Version",
                pins::PROMETHEUS_RELEASE.trim_start_matches('v'),
            )]),
            reports: pins::PROMETHEUS_RELEASE,
            ..Program::new(
                "prometheus",
                "github.com/prometheus/prometheus",
                pins::PROMETHEUS,
            )
        },
        Program {
            packages: &["github.com/coredns/coredns"],
            // Its version is a constant (coremain.CoreVersion): nothing to set.
            version_arg: "-version",
            ..Program::new("coredns", "github.com/coredns/coredns", pins::COREDNS)
        },
        Program {
            // The web UI's folder holds a placeholder file in the module, so the build embeds
            // that instead of the UI: the UI is not needed.
            // Its Gateway provider checks the CRDs it watches against this bundle version.
            requires: &[("sigs.k8s.io/gateway-api", pins::GATEWAY_API)],
            packages: &["github.com/traefik/traefik/v3/cmd/traefik"],
            ldflags: ldflags_setting(&[(
                "github.com/traefik/traefik/v3/pkg/version.Version",
                pins::TRAEFIK,
            )]),
            version_arg: "version",
            ..Program::new("traefik", "github.com/traefik/traefik/v3", pins::TRAEFIK)
        },
        Program {
            sibling_overrides: &[(
                "github.com/prometheus-operator/prometheus-operator/pkg/client",
                pins::PROMETHEUS_OPERATOR_CLIENT,
            )],
            packages: &[
                "github.com/prometheus-operator/prometheus-operator/cmd/operator",
                "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader",
            ],
            // As its Makefile does: the version without its `v`.
            ldflags: ldflags_setting(&[(
                "github.com/prometheus/common/version.Version",
                pins::PROMETHEUS_OPERATOR.trim_start_matches('v'),
            )]),
            ..Program::new(
                "prometheus-operator",
                PROMETHEUS_OPERATOR,
                pins::PROMETHEUS_OPERATOR,
            )
        },
    ]
}

/// The output name of a package: its last path element, with two exceptions.
fn binary_of(package: &str) -> &str {
    match package {
        "go.etcd.io/etcd/server/v3" => "etcd",
        "github.com/prometheus-operator/prometheus-operator/cmd/operator" => "prometheus-operator",
        _ => last_element(package),
    }
}

/// The name `go build -o <folder>/` gives a package's binary.
fn last_element(package: &str) -> &str {
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
        .with_context(|| format!("the kwok and node backends build their binaries with Go: install Go 1.21 or newer (https://go.dev/dl/ or the distribution's golang-go); it fetches {} itself", pins::GO_TOOLCHAIN))?;
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

/// Every input of a build of `programs`, as text: hashed into the key and stored beside the
/// binaries.
fn key_text(go: &str, programs: &[Program]) -> String {
    let mut text = format!("{SCHEMA}\ngo: {go}\n");
    for program in programs {
        let _ = write!(
            text,
            "{}: {}@{} packages {} ldflags {:?}",
            program.name,
            program.module,
            program.version,
            program.packages.join(" "),
            program.ldflags
        );
        for (module, version) in program.sibling_overrides {
            let _ = write!(text, " replace {module} => {module} {version}");
        }
        for (module, version) in program.requires {
            let _ = write!(text, " requires {module} {version}");
        }
        text.push('\n');
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
    ensure_built(
        "controlplane",
        &format!(
            "Kubernetes {kubernetes}, etcd {}, kwok {}, metrics-server {}",
            pins::ETCD,
            pins::KWOK,
            pins::METRICS_SERVER
        ),
        "15-25 minutes on 2 cores, 3-5 GB of Go caches",
        &programs(kubernetes),
        &BINARIES,
    )
}

/// The node backend's Prometheus, CoreDNS, Traefik, Prometheus Operator and its config reloader
/// ([`NODE_ADDON_BINARIES`]) from the cache, built first when missing or damaged.
pub fn ensure_node_addons() -> Result<Binaries> {
    ensure_built(
        "node-addons",
        &format!(
            "Prometheus {}, CoreDNS {}, Traefik {}, Prometheus Operator {}",
            pins::PROMETHEUS_RELEASE,
            pins::COREDNS,
            pins::TRAEFIK,
            pins::PROMETHEUS_OPERATOR
        ),
        "20-30 minutes on 2 busy cores",
        &node_addon_programs(),
        &NODE_ADDON_BINARIES,
    )
}

/// The cache entry `name` of `programs`, whose binaries are `binaries`.
fn ensure_built(
    name: &str,
    what: &str,
    first_time: &str,
    programs: &[Program],
    binaries: &[&str],
) -> Result<Binaries> {
    let go = go_version()?;
    let files: Vec<String> = binaries.iter().map(|name| format!("bin/{name}")).collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let cache = Cache {
        name,
        key_text: key_text(&go, programs),
        files: &files,
    };
    let dir = cache.ensure(|out| {
        eprintln!(
            "  {name}: building {what} with {go} into {} (first time: {first_time})",
            out.display()
        );
        let started = Instant::now();
        build_into(out, programs)?;
        eprintln!(
            "  {name}: built in {:.1} min",
            started.elapsed().as_secs_f64() / 60.0
        );
        Ok(())
    })?;
    Ok(Binaries { dir })
}

fn build_into(out: &Path, programs: &[Program]) -> Result<()> {
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    for program in programs {
        build_program(out, &bin, program)?;
    }
    for program in programs {
        for package in program.packages {
            check_version(&bin.join(binary_of(package)), program)?;
        }
    }
    Ok(())
}

fn build_program(out: &Path, bin: &Path, program: &Program) -> Result<()> {
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
    args.push(if let [package] = program.packages {
        bin.join(binary_of(package)).display().to_string()
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
    if program.packages.len() > 1 {
        // `go build -o <folder>/` names each binary after its package's last path element.
        for package in program.packages {
            let (built, wanted) = (last_element(package), binary_of(package));
            if built != wanted {
                std::fs::rename(bin.join(built), bin.join(wanted))
                    .with_context(|| format!("renaming bin/{built} to bin/{wanted}"))?;
            }
        }
    }
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
    Ok(())
}

/// The binary runs and says it is `program`'s version.
fn check_version(binary: &Path, program: &Program) -> Result<()> {
    let name = binary.display().to_string();
    let out = Cmd::new(name.clone(), [program.version_arg])
        .timeout(Duration::from_secs(30))
        .capture()
        .with_context(|| format!("{name} {}: the build is not usable", program.version_arg))?;
    let said = format!("{}{}", out.stdout, out.stderr);
    if !out.success {
        bail!(
            "{name} {} failed: the build is not usable: {}",
            program.version_arg,
            said.trim()
        );
    }
    let expected = if program.reports.is_empty() {
        program.version.as_str()
    } else {
        program.reports
    };
    if !said.contains(expected.trim_start_matches('v')) {
        bail!(
            "{name} {} says {:?}, not {expected}",
            program.version_arg,
            said.trim(),
        );
    }
    Ok(())
}

/// `module camunda-conformance/<name>` requiring the program's module and, at the matching
/// version, every sibling its go.mod replaces with a local path; repeating the go.mod's other
/// `replace` lines and its `exclude` lines.
fn wrapper_go_mod(program: &Program) -> Result<String> {
    let upstream = module_go_mod(program.module, &program.version)?;
    for (module, version) in program.requires {
        let required = required_version(&upstream, module);
        if required.as_deref() != Some(*version) {
            bail!(
                "{}@{} requires {module} {}, but the pin says {version}: change the pin with the program",
                program.module,
                program.version,
                required.as_deref().unwrap_or("(nothing)")
            );
        }
    }
    Ok(wrapper_go_mod_text(program, &upstream))
}

fn wrapper_go_mod_text(program: &Program, upstream: &str) -> String {
    let sibling_version = (program.sibling_version)(&program.version);
    let mut text = format!(
        "// Generated by cargo xtask: builds {}@{} with its siblings at matching versions.\nmodule camunda-conformance/{}\n\ngo {}\n\nrequire (\n\t{} {}\n",
        program.module,
        program.version,
        program.name,
        pins::GO_TOOLCHAIN.trim_start_matches("go"),
        program.module,
        program.version
    );
    for sibling in local_replacements(upstream) {
        let _ = writeln!(text, "\t{sibling} {sibling_version}");
    }
    text.push_str(")\n");
    let repeated = main_module_lines(upstream);
    if !repeated.is_empty() {
        text.push_str("\n// From its go.mod, where they applied as the main module's.\n");
        for line in repeated {
            let _ = writeln!(text, "{line}");
        }
    }
    for (module, version) in program.sibling_overrides {
        let _ = writeln!(
            text,
            "\n// The module proxy does not serve it at {sibling_version}.\nreplace {module} => {module} {version}"
        );
    }
    text
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

/// The `replace` and `exclude` directives of a go.mod, single-line or in blocks, comments
/// removed: `("replace", "a => b v1")`.
fn directives(go_mod: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let mut block: Option<&'static str> = None;
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        if block.is_some() && line == ")" {
            block = None;
            continue;
        }
        if let Some(verb) = block {
            if !line.is_empty() {
                found.push((verb, line.to_string()));
            }
            continue;
        }
        for verb in ["replace", "exclude"] {
            let Some(rest) = line.strip_prefix(verb) else {
                continue;
            };
            let rest = rest.trim();
            if rest == "(" {
                block = Some(verb);
            } else if !rest.is_empty() && line[verb.len()..].starts_with([' ', '\t']) {
                found.push((verb, rest.to_string()));
            }
        }
    }
    found
}

/// The version of `module` a go.mod's `require` lines name.
fn required_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let line = line.split("//").next().unwrap_or_default().trim();
        let line = line.strip_prefix("require ").unwrap_or(line).trim();
        let mut words = line.split_whitespace();
        (words.next() == Some(module))
            .then(|| words.next().map(str::to_string))
            .flatten()
    })
}

/// A replacement with a local folder (`=> ./staging/...`, `=> ../api`).
fn is_local(replacement: &str) -> bool {
    let target = replacement.split_once("=>").map_or("", |(_, t)| t.trim());
    target.starts_with("./") || target.starts_with("../")
}

/// The modules a go.mod replaces with a local path, minus examples the proxy does not serve
/// and no binary imports (k8s.io/sample-*).
fn local_replacements(go_mod: &str) -> Vec<String> {
    let mut modules: Vec<String> = directives(go_mod)
        .into_iter()
        .filter(|(verb, body)| {
            // etcd fences off modules it must never depend on with `=> ./FORBIDDEN_DEPENDENCY`.
            *verb == "replace" && is_local(body) && !body.contains("FORBIDDEN_DEPENDENCY")
        })
        .filter_map(|(_, body)| body.split_whitespace().next().map(str::to_string))
        .filter(|module| !module.starts_with("k8s.io/sample-"))
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

/// The lines of a go.mod that a wrapper repeats: every `replace` with a published module (not
/// a local folder) and every `exclude`.
fn main_module_lines(go_mod: &str) -> Vec<String> {
    directives(go_mod)
        .into_iter()
        .filter(|(verb, body)| *verb == "exclude" || !is_local(body))
        .map(|(verb, body)| format!("{verb} {body}"))
        .collect()
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

    const GO: &str = "go1.26.8 linux/amd64";

    /// Shaped like k8s.io/kubernetes's, etcd's and Traefik's go.mod files.
    const GO_MOD: &str = "module k8s.io/kubernetes\n\nrequire (\n\tsigs.k8s.io/gateway-api v1.4.0 // indirect\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller\n\tgithub.com/x/y => github.com/x/z v1.0.0 // a fork\n)\nreplace go.etcd.io/etcd/api/v3 => ../api\nreplace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY\nreplace github.com/a/b v1.2.0 => github.com/a/c v0.0.0-20250523120546-41b6ec3aed59\n\n// ambiguous import\nexclude github.com/t/sdk v3.0.83+incompatible\nexclude (\n\tgithub.com/u/v v1.0.0\n)\n";

    #[test]
    fn staging_and_sibling_modules_come_from_local_replacements() {
        assert_eq!(
            local_replacements(GO_MOD),
            ["go.etcd.io/etcd/api/v3", "k8s.io/api"]
        );
        assert_eq!(staging_version("v1.36.3"), "v0.36.3");
        assert_eq!(
            binary_of("k8s.io/kubernetes/cmd/kube-apiserver"),
            "kube-apiserver"
        );
        assert_eq!(binary_of("go.etcd.io/etcd/server/v3"), "etcd");
        assert_eq!(
            binary_of("github.com/prometheus-operator/prometheus-operator/cmd/operator"),
            "prometheus-operator"
        );
        assert!(valid_version("v1.35.4") && !valid_version("1.35.4") && !valid_version("v1.35"));
    }

    #[test]
    fn wrappers_repeat_versioned_replaces_and_excludes_but_not_local_ones() {
        assert_eq!(
            main_module_lines(GO_MOD),
            [
                "replace github.com/x/y => github.com/x/z v1.0.0",
                "replace github.com/a/b v1.2.0 => github.com/a/c v0.0.0-20250523120546-41b6ec3aed59",
                "exclude github.com/t/sdk v3.0.83+incompatible",
                "exclude github.com/u/v v1.0.0",
            ]
        );
        assert_eq!(
            required_version(GO_MOD, "sigs.k8s.io/gateway-api").as_deref(),
            Some("v1.4.0")
        );
        assert_eq!(required_version(GO_MOD, "sigs.k8s.io/gateway"), None);
        let operator = node_addon_programs()
            .into_iter()
            .find(|p| p.name == "prometheus-operator")
            .unwrap();
        let upstream = "module github.com/prometheus-operator/prometheus-operator\n\nreplace (\n\tgithub.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring => ./pkg/apis/monitoring\n\tgithub.com/prometheus-operator/prometheus-operator/pkg/client => ./pkg/client\n)\n";
        let text = wrapper_go_mod_text(&operator, upstream);
        let pkg = "github.com/prometheus-operator/prometheus-operator/pkg";
        for line in [
            format!("\t{pkg}/apis/monitoring {}\n", pins::PROMETHEUS_OPERATOR),
            format!("\t{pkg}/client {}\n", pins::PROMETHEUS_OPERATOR),
            format!(
                "\nreplace {pkg}/client => {pkg}/client {}\n",
                pins::PROMETHEUS_OPERATOR_CLIENT
            ),
        ] {
            assert!(text.contains(&line), "{line:?} is not in\n{text}");
        }
        // Programs without such lines get the wrapper they always had.
        let etcd = &programs(pins::KUBERNETES)[1];
        assert!(!wrapper_go_mod_text(
            etcd,
            "module go.etcd.io/etcd/server/v3\nreplace go.etcd.io/etcd/api/v3 => ../api\n"
        )
        .contains("replace"));
    }

    #[test]
    fn the_cache_key_names_every_input() {
        let text = key_text(GO, &programs(pins::KUBERNETES));
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
        assert!(text.contains("cmd/kubelet") && text.contains("cmd/kube-proxy"));
        assert_ne!(text, key_text(GO, &programs("v1.35.4")));
        assert_ne!(
            text,
            key_text("go1.26.9 linux/amd64", &programs(pins::KUBERNETES))
        );
    }

    #[test]
    fn the_node_addons_key_names_every_pin() {
        let text = key_text(GO, &node_addon_programs());
        for pin in [
            pins::COREDNS,
            pins::TRAEFIK,
            pins::PROMETHEUS_OPERATOR,
            pins::PROMETHEUS_OPERATOR_CLIENT,
            pins::GATEWAY_API,
        ] {
            assert!(text.contains(pin), "{pin} is not in the key");
        }
        // The files the node backend reads come from the built versions: they are in a key too.
        let control_plane = key_text(GO, &programs(pins::KUBERNETES));
        for files in pins::NODE_FILES {
            let pin = format!("{}@{}", files.module, files.version);
            let requirement = format!("requires {} {}", files.module, files.version);
            assert!(
                text.contains(&pin) || text.contains(&requirement) || control_plane.contains(&pin),
                "{pin} is in no key"
            );
        }
        assert_ne!(
            text,
            key_text("go1.26.9 linux/amd64", &node_addon_programs())
        );
    }

    #[test]
    fn every_binary_is_built_by_exactly_one_package() {
        for (programs, binaries) in [
            (programs(pins::KUBERNETES), &BINARIES[..]),
            (node_addon_programs(), &NODE_ADDON_BINARIES[..]),
        ] {
            let mut built: Vec<&str> = programs
                .iter()
                .flat_map(|p| p.packages.iter().map(|package| binary_of(package)))
                .collect();
            built.sort_unstable();
            let mut expected = binaries.to_vec();
            expected.sort_unstable();
            assert_eq!(built, expected);
        }
    }

    /// The pinned files are there, in the modules the proxy serves.
    /// `cargo test -p camunda-conformance-controlplane -- --ignored node_file_pins_exist`
    #[test]
    #[ignore = "downloads modules"]
    fn node_file_pins_exist() {
        for files in pins::NODE_FILES {
            let dir = module_dir(files.module, files.version)
                .unwrap()
                .join(files.dir);
            for file in files.files {
                assert!(dir.join(file).is_file(), "{} has no {file}", dir.display());
            }
        }
    }

    /// Builds (or finds) a cache entry and says how long it took and what each binary says.
    fn built(ensure: fn() -> Result<Binaries>, binaries: &[&str], programs: &[Program]) {
        let started = Instant::now();
        let built = ensure().unwrap();
        eprintln!(
            "{} in {:.1} min",
            built.dir.display(),
            started.elapsed().as_secs_f64() / 60.0
        );
        for program in programs {
            for package in program.packages {
                let name = binary_of(package);
                assert!(binaries.contains(&name));
                check_version(&built.path(name), program).unwrap();
                let out = Cmd::new(
                    built.path(name).display().to_string(),
                    [program.version_arg],
                )
                .capture()
                .unwrap();
                eprintln!(
                    "{name} {}: {}{}",
                    program.version_arg,
                    out.stdout.trim(),
                    out.stderr.trim()
                );
            }
        }
    }

    /// `cargo test -p camunda-conformance-controlplane -- --ignored builds_the_node_addons --nocapture`
    #[test]
    #[ignore = "builds Go programs: about 10 minutes the first time"]
    fn builds_the_node_addons() {
        built(
            ensure_node_addons,
            &NODE_ADDON_BINARIES,
            &node_addon_programs(),
        );
    }

    /// `cargo test -p camunda-conformance-controlplane -- --ignored builds_the_control_plane --nocapture`
    #[test]
    #[ignore = "builds Go programs: 15-25 minutes the first time"]
    fn builds_the_control_plane() {
        built(ensure, &BINARIES, &programs(pins::KUBERNETES));
    }
}
