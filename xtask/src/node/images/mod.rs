//! Every container image of the node backend, built on this host: nothing is pulled (no registry
//! is reachable). A shared Debian base (`debootstrap --variant=minbase`), one apt layer per
//! package set on top of it (Debian's packages at the versions the host's apt names), then each
//! image's own files (`umoci insert`) and configuration (`umoci config`); the pause image is a
//! static `/pause` compiled here and nothing else.
//!
//! Each stage is an entry of the content-keyed build cache (`node-images/…`, an OCI archive
//! `image.tar` each): its key holds every input (the suite and sources, the exact version of
//! every package the stage can install, the sha256 of our files and binaries, the tools'
//! versions, the parent stage's key), so a warm run rebuilds nothing, and a new Camunda jar
//! rebuilds only the image's last layer. [`import`] loads the archives into containerd's `k8s.io`
//! namespace, where the kubelet finds them as `docker.io/<name>`.

mod chroot;
mod oci;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camunda_conformance_controlplane::cache::{self, Cache};
use camunda_conformance_controlplane::cmd::Cmd;
use camunda_conformance_controlplane::{build, pins};
use sha2::{Digest, Sha256};

use crate::flavour::Flavour;
use oci::{Config, Layout};

/// Bumped when what goes into a key, or how a stage is built, changes.
const SCHEMA: &str = "node images 1";
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// The file of every cache entry.
const ARCHIVE: &str = "image.tar";
/// The registry the kubelet (CRI) prefixes to a bare image name.
const REGISTRY: &str = "docker.io";
const PAUSE_VERSION: &str = "3.10";
/// What `gcc` is given for `/pause` (the Kubernetes Makefile's flags, our version string).
const PAUSE_CFLAGS: &[&str] = &["-Os", "-Wall", "-Werror", "-static"];
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const IMPORT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Images imported into containerd at the same time.
const IMPORT_WORKERS: usize = 3;

/// One built image: its name (as the manifests say it, without a registry) and its OCI
/// archive in the build cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// E.g. `camunda-conformance/camunda:7.24.0`.
    pub name: String,
    /// An OCI archive (a tarred OCI layout made by umoci) in the cache.
    pub archive: PathBuf,
}

impl Image {
    /// The name containerd holds it under (and the kubelet looks it up by).
    pub fn reference(&self) -> String {
        reference(&self.name)
    }
}

fn reference(name: &str) -> String {
    format!("{REGISTRY}/{name}")
}

/// The Camunda application of one flavour (the files `crate::local::app::App` names).
pub struct CamundaApp<'a> {
    pub flavour: Flavour,
    pub jar: &'a Path,
    /// The jmx_exporter javaagent jar.
    pub agent: &'a Path,
    /// The flavour's prometheus-jmx.yml.
    pub jmx_config: &'a Path,
}

/// What the images are made of besides Debian's packages.
pub struct Inputs<'a> {
    /// The repository (for fixtures/image/…).
    pub root: &'a Path,
    /// One Camunda image per application given.
    pub apps: &'a [CamundaApp<'a>],
    /// The static Go binaries by program name: every program of [`BINARY_IMAGES`].
    pub binaries: &'a [(&'a str, &'a Path)],
    /// Where each stage's build log goes (`image-<stage>.log`).
    pub logs: &'a Path,
}

/// The images made of one static Go binary: (program, image repository, version). The binary
/// lands at `/usr/bin/<program>` (also `/bin/<program>`), its entrypoint.
pub const BINARY_IMAGES: &[(&str, &str, &str)] = &[
    (
        "metrics-server",
        "camunda-conformance/metrics-server",
        pins::METRICS_SERVER,
    ),
    ("coredns", "camunda-conformance/coredns", pins::COREDNS),
    // Debian's Prometheus is built without Kubernetes service discovery.
    (
        "prometheus",
        "camunda-conformance/prometheus",
        pins::PROMETHEUS_RELEASE,
    ),
    ("traefik", "camunda-conformance/traefik", pins::TRAEFIK),
    (
        "prometheus-operator",
        "camunda-conformance/prometheus-operator",
        pins::PROMETHEUS_OPERATOR,
    ),
    (
        "prometheus-config-reloader",
        "camunda-conformance/prometheus-config-reloader",
        pins::PROMETHEUS_OPERATOR,
    ),
];

/// A set of Debian packages installed on the base, with what is done around the install
/// (shell, in the chroot; `renumber USER ID` gives a package's system user and its own group a
/// fixed id, and its files with them).
pub struct Layer {
    pub name: &'static str,
    pub packages: &'static [&'static str],
    pub before: &'static str,
    pub after: &'static str,
}

/// Defined before every layer's script.
const RENUMBER: &str = r#"renumber() {
  old_uid=$(id -u "$1"); old_gid=$(id -g "$1"); group=$(id -gn "$1")
  if [ "$group" = "$1" ]; then
    groupmod --gid "$2" "$1"
    find / -xdev -gid "$old_gid" -exec chgrp -h "$2" {} +
  else
    groupadd --gid "$2" "$1"
  fi
  usermod --uid "$2" --gid "$2" "$1"
  find / -xdev -uid "$old_uid" -exec chown -h "$2" {} +
}"#;

pub const JRE: Layer = Layer {
    name: "jre",
    packages: &["openjdk-17-jre-headless"],
    // As fixtures/image/Dockerfile: UID 1000 named camunda, /camunda its own.
    before: "groupadd --gid 1000 camunda
useradd --uid 1000 --gid 1000 --home-dir /camunda --no-create-home --shell /usr/sbin/nologin camunda",
    after: "mkdir -p /camunda/javaagent
chown -R 1000:1000 /camunda",
};

pub const POSTGRES: Layer = Layer {
    name: "postgres",
    packages: &["postgresql-15"],
    // The official image's user, created before the package so that it keeps its ids.
    before: "groupadd --system --gid 999 postgres
useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --no-create-home --shell /bin/bash postgres",
    // The package creates a cluster; the entrypoint makes its own in PGDATA.
    after: "if [ -d /etc/postgresql/15/main ]; then pg_dropcluster 15 main; fi
install -d -o postgres -g postgres -m 3777 /run/postgresql
install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data",
};

pub const REDIS: Layer = Layer {
    name: "redis",
    packages: &["redis-server"],
    before: "",
    after: "renumber redis 999
install -d -o redis -g redis -m 0755 /data",
};

pub const MEMCACHED: Layer = Layer {
    name: "memcached",
    packages: &["memcached"],
    before: "",
    // The official image's memcache user.
    after: "renumber memcache 11211",
};

pub const TWEMPROXY: Layer = Layer {
    name: "twemproxy",
    packages: &["nutcracker"],
    before: "",
    after: "if id nutcracker >/dev/null 2>&1; then renumber nutcracker 1000; else
  groupadd --gid 1000 nutcracker
  useradd --uid 1000 --gid 1000 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin nutcracker
fi",
};

pub const LAYERS: &[&Layer] = &[&JRE, &POSTGRES, &REDIS, &MEMCACHED, &TWEMPROXY];

/// What an image starts from.
#[derive(Clone, Copy)]
enum Parent {
    Scratch,
    Base,
    Layer(&'static Layer),
}

enum Source {
    Copy(PathBuf),
    /// Kubernetes' pause.c, compiled static.
    Pause(PathBuf),
}

struct File {
    source: Source,
    target: String,
    mode: u32,
}

/// One image: its parent stage, its files and its configuration.
struct Spec {
    name: String,
    parent: Parent,
    files: Vec<File>,
    config: Config,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn copy(from: PathBuf, target: &str, mode: u32) -> File {
    File {
        source: Source::Copy(from),
        target: target.to_string(),
        mode,
    }
}

/// Every image to build; `strict`: every Go binary must be given.
fn specs(inputs: &Inputs, pause_c: PathBuf, strict: bool) -> Result<Vec<Spec>> {
    let fixtures = inputs.root.join("fixtures/image");
    let user = |id: u32| format!("{id}:{id}");
    let mut specs = vec![Spec {
        name: format!("camunda-conformance/pause:{PAUSE_VERSION}"),
        parent: Parent::Scratch,
        files: vec![File {
            source: Source::Pause(pause_c),
            target: "/pause".into(),
            mode: 0o755,
        }],
        config: Config {
            entrypoint: strings(&["/pause"]),
            user: user(65535),
            ..Config::default()
        },
    }];
    for app in inputs.apps {
        app.flavour.ensure_available()?;
        specs.push(Spec {
            name: app.flavour.image().to_string(),
            parent: Parent::Layer(&JRE),
            files: vec![
                copy(app.jar.to_path_buf(), "/camunda/camunda-app.jar", 0o644),
                copy(
                    app.agent.to_path_buf(),
                    "/camunda/javaagent/jmx_prometheus_javaagent.jar",
                    0o644,
                ),
                copy(
                    app.jmx_config.to_path_buf(),
                    "/camunda/javaagent/prometheus-jmx.yml",
                    0o644,
                ),
                copy(
                    fixtures.join("entrypoint.sh"),
                    "/camunda/entrypoint.sh",
                    0o755,
                ),
            ],
            // fixtures/image/Dockerfile's ENV, USER, WORKDIR, EXPOSE and ENTRYPOINT.
            config: Config {
                entrypoint: strings(&["/camunda/entrypoint.sh"]),
                user: user(1000),
                env: strings(&[
                    PATH,
                    "SERVER_PORT=8080",
                    "JMX_PROMETHEUS=false",
                    "JMX_PROMETHEUS_PORT=9404",
                    "JMX_PROMETHEUS_CONF=/camunda/javaagent/prometheus-jmx.yml",
                    "SESSION_STORE=none",
                    "JAVA_OPTS=-XX:MaxRAMPercentage=75.0 -XX:+ExitOnOutOfMemoryError",
                ]),
                workdir: Some("/camunda".into()),
                ports: strings(&["8080/tcp", "9404/tcp"]),
                ..Config::default()
            },
        });
    }
    specs.extend([
        Spec {
            name: "camunda-conformance/postgres:15".into(),
            parent: Parent::Layer(&POSTGRES),
            files: vec![copy(
                fixtures.join("node/postgres-entrypoint.sh"),
                "/usr/local/bin/postgres-entrypoint.sh",
                0o755,
            )],
            config: Config {
                entrypoint: strings(&["/usr/local/bin/postgres-entrypoint.sh"]),
                cmd: strings(&["postgres"]),
                user: user(999),
                env: strings(&[
                    "PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "PGDATA=/var/lib/postgresql/data",
                    "LANG=C.UTF-8",
                ]),
                ports: strings(&["5432/tcp"]),
                // As the official image: a fast shutdown.
                stop_signal: Some("SIGINT".into()),
                ..Config::default()
            },
        },
        Spec {
            name: "camunda-conformance/redis:7".into(),
            parent: Parent::Layer(&REDIS),
            files: vec![],
            config: Config {
                // Without a config file Redis binds every address but, protected, refuses
                // other hosts' clients: the official image turns that off the same way.
                entrypoint: strings(&["redis-server", "--protected-mode", "no"]),
                user: user(999),
                env: strings(&[PATH]),
                workdir: Some("/data".into()),
                ports: strings(&["6379/tcp"]),
                ..Config::default()
            },
        },
        Spec {
            name: "camunda-conformance/memcached:1.6".into(),
            parent: Parent::Layer(&MEMCACHED),
            files: vec![],
            config: Config {
                entrypoint: strings(&["memcached"]),
                user: user(11211),
                env: strings(&[PATH]),
                ports: strings(&["11211/tcp"]),
                ..Config::default()
            },
        },
        Spec {
            name: "camunda-conformance/twemproxy:0.5.0".into(),
            parent: Parent::Layer(&TWEMPROXY),
            files: vec![],
            // As fixtures/image/twemproxy/Dockerfile.
            config: Config {
                entrypoint: strings(&["nutcracker"]),
                cmd: strings(&["--conf-file=/etc/nutcracker/nutcracker.yml"]),
                user: user(1000),
                env: strings(&[PATH]),
                ports: strings(&["22121/tcp", "22122/tcp"]),
                ..Config::default()
            },
        },
    ]);
    for (program, _) in inputs.binaries {
        if !BINARY_IMAGES.iter().any(|(p, _, _)| p == program) {
            bail!("no image is made of a binary named {program}");
        }
    }
    for (program, repository, version) in BINARY_IMAGES {
        let Some((_, path)) = inputs.binaries.iter().find(|(p, _)| p == program) else {
            if strict {
                bail!("the image {repository}:{version} needs the binary {program}, which was not given");
            }
            continue;
        };
        // /bin is /usr/bin on Debian since bookworm: the operator starts its reloader as
        // /bin/prometheus-config-reloader, as upstream images lay it out.
        let target = format!("/usr/bin/{program}");
        specs.push(Spec {
            name: format!("{repository}:{version}"),
            parent: Parent::Base,
            files: vec![copy(path.to_path_buf(), &target, 0o755)],
            config: Config {
                entrypoint: vec![target],
                user: user(65534),
                env: strings(&[PATH]),
                ..Config::default()
            },
        });
    }
    Ok(specs)
}

/// The host's tools and sources, for the keys.
struct Facts {
    debootstrap: String,
    umoci: String,
    /// gcc's and the static libc's versions (the pause image).
    gcc: String,
    /// The apt sources copied into every image (their lists are the host's).
    sources: String,
}

fn facts() -> Result<Facts> {
    let debootstrap = Cmd::new("dpkg-query", ["-W", "-f", "${Version}", "debootstrap"])
        .output()
        .context("debootstrap is needed to build the images (apt-get install debootstrap)")?;
    let umoci = oci::umoci_version()
        .context("umoci is needed to build the images (apt-get install umoci)")?;
    let gcc = Cmd::new("gcc", ["-dumpfullversion"]).output()?;
    let libc = Cmd::new("dpkg-query", ["-W", "-f", "${Version}", "libc6-dev"])
        .output()
        .context("libc6-dev (static libc) is needed for /pause")?;
    let sources = std::fs::read_to_string(chroot::HOST_SOURCES)
        .with_context(|| format!("reading {}", chroot::HOST_SOURCES))?;
    Ok(Facts {
        debootstrap: format!("debootstrap {}", debootstrap.trim()),
        umoci,
        gcc: format!("gcc {}, libc6-dev {}", gcc.trim(), libc.trim()),
        sources,
    })
}

/// `apt-cache` with a package cache of our own: the host's apt configuration may keep none
/// (Docker-style `Dir::Cache::pkgcache ""`), and rebuilding it costs a second a call. apt
/// checks it against the lists and rebuilds it when they change.
fn apt_cache(args: Vec<String>) -> Result<Cmd> {
    let dir = cache::root()?.join("node-images/apt");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut all = Vec::new();
    for (option, file) in [
        ("Dir::Cache::pkgcache", "pkgcache.bin"),
        ("Dir::Cache::srcpkgcache", "srcpkgcache.bin"),
    ] {
        all.push("-o".to_string());
        all.push(format!("{option}={}", dir.join(file).display()));
    }
    all.extend(args);
    Ok(Cmd::new("apt-cache", all))
}

/// The packages debootstrap's minbase installs: every `Priority: required` one, and apt.
fn minbase_packages() -> Result<Vec<String>> {
    let all = apt_cache(strings(&["dumpavail"]))?.output()?;
    Ok(required_in(&all))
}

fn required_in(dumpavail: &str) -> Vec<String> {
    let mut names = vec!["apt".to_string()];
    let mut package = "";
    for line in dumpavail.lines() {
        if let Some(name) = line.strip_prefix("Package: ") {
            package = name.trim();
        } else if line.trim() == "Priority: required" && !package.is_empty() {
            names.push(package.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Every package installing `packages` can bring, with the version the host's apt would
/// install (the chroot has the host's lists, so it installs the same).
fn candidates(packages: &[String]) -> Result<BTreeMap<String, String>> {
    let mut args = strings(&[
        "depends",
        "--recurse",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
    ]);
    args.extend(packages.iter().cloned());
    let closure = apt_cache(args)?.output()?;
    let mut names: Vec<String> = closure
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('<') && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    names.sort();
    names.dedup();
    let mut args = vec!["policy".to_string()];
    args.extend(names);
    let policy = apt_cache(args)?.output()?;
    let versions = parse_policy(&policy);
    for package in packages {
        if !versions.contains_key(package) {
            bail!("apt has no candidate for {package} (is the host's apt configured for {SUITE}?)");
        }
    }
    Ok(versions)
}

/// `apt-cache policy`'s candidates, by package.
fn parse_policy(text: &str) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    let mut package = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            package = line.strip_suffix(':').map(str::to_string);
        } else if let (Some(name), Some(version)) =
            (&package, line.trim().strip_prefix("Candidate: "))
        {
            if version != "(none)" {
                versions.insert(name.clone(), version.to_string());
            }
        }
    }
    versions
}

fn sha256_hex(text: &str) -> String {
    cache::hex(&Sha256::digest(text.as_bytes()))
}

fn package_lines(key: &mut String, versions: &BTreeMap<String, String>) {
    for (name, version) in versions {
        let _ = writeln!(key, "  {name} {version}");
    }
}

/// The base's script in the chroot: the host's candidates of what debootstrap installed.
const BASE_SCRIPT: &str = "apt-get -y -o Dpkg::Options::=--force-confold upgrade";

fn base_key(facts: &Facts, versions: &BTreeMap<String, String>) -> String {
    let mut key = format!(
        "{SCHEMA}: base\nsuite: {SUITE}\nmirror: {MIRROR}\n{}\nvariant: minbase\numoci: {}\n\
         script: {BASE_SCRIPT}\ncleanup: {}\nsources:\n{}\npackages (the host's candidates):\n",
        facts.debootstrap,
        facts.umoci,
        chroot::CLEANUP,
        facts.sources.trim_end(),
    );
    package_lines(&mut key, versions);
    key
}

/// A layer's script in the chroot.
fn layer_script(layer: &Layer, versions: &BTreeMap<String, String>) -> String {
    let pinned: Vec<String> = layer
        .packages
        .iter()
        .map(|p| format!("{p}={}", versions.get(*p).map(String::as_str).unwrap_or("")))
        .collect();
    format!(
        "{RENUMBER}\n{}\napt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold {}\n{}",
        layer.before,
        pinned.join(" "),
        layer.after
    )
}

fn layer_key(
    layer: &Layer,
    parent_key: &str,
    facts: &Facts,
    versions: &BTreeMap<String, String>,
) -> String {
    let mut key = format!(
        "{SCHEMA}: layer {}\nparent: {}\numoci: {}\nscript:\n{}\ncleanup: {}\npackages (the host's candidates):\n",
        layer.name,
        sha256_hex(parent_key),
        facts.umoci,
        layer_script(layer, versions),
        chroot::CLEANUP,
    );
    package_lines(&mut key, versions);
    key
}

/// `file_sums`: the sha256 of each file's source, in order.
fn image_key(spec: &Spec, parent_key: Option<&str>, facts: &Facts, file_sums: &[String]) -> String {
    let mut key = format!(
        "{SCHEMA}: image {}\nreference: {}\nparent: {}\numoci: {}\n",
        spec.name,
        reference(&spec.name),
        parent_key
            .map(sha256_hex)
            .unwrap_or_else(|| "scratch".into()),
        facts.umoci,
    );
    for (file, sum) in spec.files.iter().zip(file_sums) {
        let how = match &file.source {
            Source::Copy(_) => "copied".to_string(),
            Source::Pause(_) => format!(
                "pause.c compiled by {} with {} -DVERSION={PAUSE_VERSION}",
                facts.gcc,
                PAUSE_CFLAGS.join(" ")
            ),
        };
        let _ = writeln!(
            key,
            "file {} mode {:o}, {how}, sha256 {sum}",
            file.target, file.mode
        );
    }
    let _ = writeln!(key, "config: {}", spec.config.args().join(" "));
    key
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A finished stage: its archive and the key it was made from.
struct Stage {
    archive: PathBuf,
    key: String,
}

/// A cache entry made by `build` (into a work folder of the entry), timed and its size said.
fn stage(
    what: &str,
    cache_name: &str,
    key: String,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<Stage> {
    let started = Instant::now();
    let mut built = false;
    let entry = Cache {
        name: cache_name,
        key_text: key.clone(),
        files: &[ARCHIVE],
    }
    .ensure(|into| {
        built = true;
        println!("building {what}");
        let work = into.join("work");
        let outcome = build(into);
        // Nothing may stay mounted in a folder that is removed or kept for its logs.
        chroot::detach_all_under(&work);
        outcome?;
        chroot::ensure_nothing_mounted(&work)?;
        if work.exists() {
            std::fs::remove_dir_all(&work)
                .with_context(|| format!("removing {}", work.display()))?;
        }
        Ok(())
    })?;
    let archive = entry.join(ARCHIVE);
    if built {
        let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
        println!(
            "  {what}: built in {:.1}s, {:.1} MB",
            started.elapsed().as_secs_f64(),
            size as f64 / 1e6
        );
    }
    Ok(Stage { archive, key })
}

fn log_file(logs: &Path, stage: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    Ok(logs.join(format!("image-{stage}.log")))
}

/// The base: debootstrap's minbase, upgraded to the host's candidates.
fn ensure_base(facts: &Facts, versions: &BTreeMap<String, String>, logs: &Path) -> Result<Stage> {
    let log = log_file(logs, "base")?;
    let key = base_key(facts, versions);
    stage("the Debian base image", "node-images/base", key, |into| {
        let work = into.join("work");
        let (dir, bundle) = (work.join("oci"), work.join("bundle"));
        let layout = Layout {
            dir: &dir,
            log: &log,
        };
        let rootfs = bundle.join("rootfs");
        let step = |name: &str, r: Result<()>| r.with_context(|| format!("base image: {name}"));
        step("umoci init", layout.init())?;
        step("umoci unpack", layout.unpack(&bundle))?;
        step(
            "debootstrap",
            Cmd::new(
                "debootstrap",
                [
                    "--variant=minbase".to_string(),
                    SUITE.into(),
                    rootfs.to_string_lossy().into_owned(),
                    MIRROR.into(),
                ],
            )
            .timeout(DEBOOTSTRAP_TIMEOUT)
            .nice()
            .run_logged(&log),
        )?;
        chroot::detach_all_under(&rootfs);
        step(
            "apt-get upgrade",
            in_chroot(&rootfs, BASE_SCRIPT, versions, &log),
        )?;
        step(
            "umoci repack",
            layout.repack(&bundle, "debootstrap --variant=minbase bookworm"),
        )?;
        step("umoci gc", layout.gc())?;
        step("tar", layout.archive(&into.join(ARCHIVE)))
    })
}

/// Runs `script` in the prepared root file system, checks the installed versions against the
/// key's, and cleans up; `/proc` is mounted only meanwhile.
fn in_chroot(
    rootfs: &Path,
    script: &str,
    versions: &BTreeMap<String, String>,
    log: &Path,
) -> Result<()> {
    chroot::prepare(rootfs)?;
    let proc = chroot::ProcMount::mount(rootfs)?;
    chroot::run(rootfs, script, log)?;
    chroot::check_versions(&chroot::installed(rootfs)?, versions)?;
    chroot::run(rootfs, chroot::CLEANUP, log)?;
    proc.unmount()?;
    chroot::ensure_nothing_mounted(rootfs)
}

fn ensure_layer(
    layer: &Layer,
    base: &Stage,
    facts: &Facts,
    versions: &BTreeMap<String, String>,
    logs: &Path,
) -> Result<Stage> {
    let log = log_file(logs, &format!("layer-{}", layer.name))?;
    let key = layer_key(layer, &base.key, facts, versions);
    let what = format!("the {} layer ({})", layer.name, layer.packages.join(", "));
    stage(
        &what,
        &format!("node-images/layer-{}", layer.name),
        key,
        |into| {
            let work = into.join("work");
            let (dir, bundle) = (work.join("oci"), work.join("bundle"));
            let layout = Layout {
                dir: &dir,
                log: &log,
            };
            let step = |name: &str, r: Result<()>| {
                r.with_context(|| format!("{} layer: {name}", layer.name))
            };
            step("extract the base", layout.extract(&base.archive))?;
            step("umoci unpack", layout.unpack(&bundle))?;
            let script = layer_script(layer, versions);
            step(
                "apt-get install",
                in_chroot(&bundle.join("rootfs"), &script, versions, &log),
            )?;
            let created_by = format!("apt-get install {}", layer.packages.join(" "));
            step("umoci repack", layout.repack(&bundle, &created_by))?;
            step("umoci gc", layout.gc())?;
            step("tar", layout.archive(&into.join(ARCHIVE)))
        },
    )
}

fn ensure_image(spec: &Spec, parent: Option<&Stage>, facts: &Facts, logs: &Path) -> Result<Image> {
    let log = log_file(logs, &slug(&spec.name))?;
    let mut sums = Vec::new();
    for file in &spec.files {
        let (Source::Copy(path) | Source::Pause(path)) = &file.source;
        sums.push(
            cache::sha256_file(path).with_context(|| format!("image {}: its file", spec.name))?,
        );
    }
    let key = image_key(spec, parent.map(|p| p.key.as_str()), facts, &sums);
    let what = format!("the image {}", spec.name);
    let done = stage(
        &what,
        &format!("node-images/{}", slug(&spec.name)),
        key,
        |into| {
            let work = into.join("work");
            let dir = work.join("oci");
            let layout = Layout {
                dir: &dir,
                log: &log,
            };
            let step = |name: &str, r: Result<()>| {
                r.with_context(|| format!("image {}: {name}", spec.name))
            };
            match parent {
                Some(parent) => step("extract its parent", layout.extract(&parent.archive))?,
                None => step("umoci init", layout.init())?,
            }
            for (index, file) in spec.files.iter().enumerate() {
                let stage_dir = work.join(format!("files/{index}"));
                std::fs::create_dir_all(&stage_dir)?;
                let name = Path::new(&file.target)
                    .file_name()
                    .context("a file target names a file")?;
                let staged = stage_dir.join(name);
                match &file.source {
                    Source::Copy(path) => {
                        std::fs::copy(path, &staged).with_context(|| {
                            format!("image {}: copying {}", spec.name, path.display())
                        })?;
                    }
                    Source::Pause(source) => {
                        let mut args = strings(PAUSE_CFLAGS);
                        args.extend([
                            format!("-DVERSION={PAUSE_VERSION}"),
                            "-o".into(),
                            staged.to_string_lossy().into_owned(),
                            source.to_string_lossy().into_owned(),
                        ]);
                        step("gcc pause.c", Cmd::new("gcc", args).run_logged(&log))?;
                    }
                }
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(file.mode))?;
                step(
                    &format!("umoci insert {}", file.target),
                    layout.insert(&staged, &file.target),
                )?;
            }
            step("umoci config", layout.config(&spec.config))?;
            step("umoci tag", layout.finish(&reference(&spec.name)))?;
            step("tar", layout.archive(&into.join(ARCHIVE)))
        },
    )?;
    Ok(Image {
        name: spec.name.clone(),
        archive: done.archive,
    })
}

/// Every image of the node backend, from the build cache (built first where missing).
pub fn ensure(inputs: &Inputs) -> Result<Vec<Image>> {
    if inputs.apps.is_empty() {
        bail!("no Camunda application was given for an image");
    }
    build_images(inputs, true)
}

/// As [`ensure`], but without the images of Go binaries not given (and no application is
/// fine): the ignored real-build test.
#[cfg(test)]
pub fn ensure_some(inputs: &Inputs) -> Result<Vec<Image>> {
    build_images(inputs, false)
}

fn build_images(inputs: &Inputs, strict: bool) -> Result<Vec<Image>> {
    let started = Instant::now();
    let facts = facts()?;
    let pause_dir = build::module_dir("k8s.io/kubernetes", pins::KUBERNETES)?;
    let pause_c = pause_dir.join("build/pause/linux/pause.c");
    let specs = specs(inputs, pause_c, strict)?;
    // Only the layers some image is made from.
    let layers: Vec<&Layer> = LAYERS
        .iter()
        .copied()
        .filter(|l| {
            specs
                .iter()
                .any(|s| matches!(s.parent, Parent::Layer(p) if p.name == l.name))
        })
        .collect();
    // The first call (re)builds apt's package cache; the others, in parallel, read it.
    let minbase = minbase_packages()?;
    let (base_versions, layer_versions) = std::thread::scope(|scope| -> Result<_> {
        let base = scope.spawn(|| candidates(&minbase));
        let each: Vec<_> = layers
            .iter()
            .map(|l| scope.spawn(move || candidates(&strings(l.packages))))
            .collect();
        let base = base.join().expect("apt-cache thread")?;
        let mut versions = Vec::new();
        for handle in each {
            versions.push(handle.join().expect("apt-cache thread")?);
        }
        Ok((base, versions))
    })?;
    let base = ensure_base(&facts, &base_versions, inputs.logs)?;
    let mut layer_stages = BTreeMap::new();
    for (layer, versions) in layers.iter().zip(&layer_versions) {
        let stage = ensure_layer(layer, &base, &facts, versions, inputs.logs)?;
        layer_stages.insert(layer.name, stage);
    }
    let mut images = Vec::new();
    for spec in &specs {
        let parent = match spec.parent {
            Parent::Scratch => None,
            Parent::Base => Some(&base),
            Parent::Layer(layer) => Some(&layer_stages[layer.name]),
        };
        images.push(ensure_image(spec, parent, &facts, inputs.logs)?);
    }
    println!(
        "{} images ready in {:.1}s",
        images.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(images)
}

/// Imports the images into the containerd listening on `containerd_socket`, namespace
/// `k8s.io` (the CRI's), where the kubelet finds them as `docker.io/<name>`.
pub fn import(containerd_socket: &Path, images: &[Image], log: &Path) -> Result<()> {
    let started = Instant::now();
    let socket = containerd_socket.to_string_lossy().into_owned();
    let ctr = |args: &[&str]| {
        let mut all = strings(&["-a", &socket, "-n", "k8s.io"]);
        all.extend(strings(args));
        Cmd::new("ctr", all)
    };
    // A few imports at a time: each one is mostly decompressing and writing layers, and one
    // after another left a core idle.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures: Vec<anyhow::Error> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..IMPORT_WORKERS)
            .map(|_| {
                scope.spawn(|| {
                    let mut failed = Vec::new();
                    while let Some(image) =
                        images.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        if let Err(err) =
                            ctr(&["images", "import", &image.archive.to_string_lossy()])
                                .timeout(IMPORT_TIMEOUT)
                                .run_logged(log)
                        {
                            failed.push(err.context(format!(
                                "importing the image {} into containerd",
                                image.name
                            )));
                        }
                    }
                    failed
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec![anyhow::anyhow!("an import thread panicked")])
            })
            .collect()
    });
    if let Some(first) = failures.into_iter().next() {
        return Err(first);
    }
    let listed = ctr(&["images", "ls", "-q"]).output()?;
    let missing: Vec<String> = images
        .iter()
        .map(Image::reference)
        .filter(|r| !listed.lines().any(|l| l.trim() == r))
        .collect();
    if !missing.is_empty() {
        bail!(
            "containerd lists no {} after the import (see {})",
            missing.join(", "),
            log.display()
        );
    }
    println!(
        "imported {} images into containerd in {:.1}s",
        images.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn facts() -> Facts {
        Facts {
            debootstrap: "debootstrap 1.0.128+nmu2+deb12u2".into(),
            umoci: "umoci version 0.4.7+ds-3+b7".into(),
            gcc: "gcc 12.2.0, libc6-dev 2.36-9+deb12u10".into(),
            sources: "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n".into(),
        }
    }

    fn versions(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn all_binaries() -> Vec<(&'static str, &'static Path)> {
        BINARY_IMAGES
            .iter()
            .map(|(program, _, _)| (*program, Path::new("/bin/x")))
            .collect()
    }

    fn with_specs<T>(
        binaries: &[(&str, &Path)],
        strict: bool,
        f: impl FnOnce(Result<Vec<Spec>>) -> T,
    ) -> T {
        let root = repo_root();
        let (jar, agent, jmx) = (
            PathBuf::from("/app/camunda-app.jar"),
            PathBuf::from("/app/agent.jar"),
            root.join(Flavour::Ce.jmx_config()),
        );
        let apps = [Flavour::Ce, Flavour::Operaton].map(|flavour| CamundaApp {
            flavour,
            jar: &jar,
            agent: &agent,
            jmx_config: &jmx,
        });
        let inputs = Inputs {
            root: &root,
            apps: &apps,
            binaries,
            logs: Path::new("/tmp"),
        };
        f(specs(
            &inputs,
            PathBuf::from("/k8s/build/pause/linux/pause.c"),
            strict,
        ))
    }

    #[test]
    fn the_image_table_is_consistent() {
        with_specs(&all_binaries(), true, |specs| {
            let specs = specs.unwrap();
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            for expected in [
                "camunda-conformance/pause:3.10",
                "camunda-conformance/camunda:7.24.0",
                "camunda-conformance/operaton:1.0.3",
                "camunda-conformance/postgres:15",
                "camunda-conformance/redis:7",
                "camunda-conformance/memcached:1.6",
                "camunda-conformance/twemproxy:0.5.0",
                "camunda-conformance/prometheus:v3.16.0",
                "camunda-conformance/prometheus-operator:v0.94.1",
                "camunda-conformance/prometheus-config-reloader:v0.94.1",
                "camunda-conformance/metrics-server:v0.9.0",
                "camunda-conformance/coredns:v1.15.0",
                "camunda-conformance/traefik:v3.6.25",
            ] {
                assert!(
                    names.contains(&expected),
                    "{expected} missing from {names:?}"
                );
            }
            assert_eq!(names.len(), 13);
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "duplicate names: {names:?}");
            let mut slugs: Vec<String> = names.iter().map(|n| slug(n)).collect();
            slugs.sort();
            slugs.dedup();
            assert_eq!(slugs.len(), names.len(), "cache folders must differ");
            for spec in &specs {
                let (repository, tag) = spec.name.rsplit_once(':').expect("a tag");
                assert!(repository.starts_with("camunda-conformance/") && !tag.is_empty());
                assert!(!spec.config.entrypoint.is_empty(), "{}", spec.name);
                let (uid, gid) = spec.config.user.split_once(':').expect("uid:gid");
                let uid: u32 = uid.parse().expect("a numeric uid");
                assert_ne!(uid, 0, "{} must not run as root", spec.name);
                assert_eq!(gid.parse::<u32>().ok(), Some(uid));
                for file in &spec.files {
                    assert!(file.target.starts_with('/'));
                    if let Source::Copy(path) = &file.source {
                        if path.starts_with(repo_root()) {
                            assert!(path.is_file(), "{} is missing", path.display());
                        }
                    }
                }
                // Only the pause image is made from nothing.
                assert_eq!(
                    matches!(spec.parent, Parent::Scratch),
                    spec.name.contains("/pause:"),
                    "{}",
                    spec.name
                );
            }
            // Every layer is used, and each layer's name is its own.
            for layer in LAYERS {
                assert!(!layer.packages.is_empty());
                assert!(specs
                    .iter()
                    .any(|s| matches!(s.parent, Parent::Layer(l) if l.name == layer.name)));
            }
            let binary = specs.iter().find(|s| s.name.contains("/traefik:")).unwrap();
            assert_eq!(binary.config.entrypoint, ["/usr/bin/traefik"]);
            assert_eq!(binary.config.user, "65534:65534");
            assert_eq!(binary.files[0].target, "/usr/bin/traefik");
        });
    }

    #[test]
    fn missing_or_unknown_binaries_are_refused_when_strict() {
        let err = with_specs(&all_binaries()[..2], true, |s| s.err().unwrap().to_string());
        // The first program of BINARY_IMAGES not given.
        assert!(err.contains(BINARY_IMAGES[2].0), "{err}");
        let count = with_specs(&all_binaries()[..2], false, |s| s.unwrap().len());
        // pause, camunda, operaton, postgres, redis, memcached, twemproxy + the two given.
        assert_eq!(count, 9);
        let err = with_specs(&[("etcd", Path::new("/bin/etcd"))], false, |s| {
            s.err().unwrap().to_string()
        });
        assert!(err.contains("etcd"), "{err}");
    }

    #[test]
    fn keys_hold_every_input() {
        let facts = facts();
        let base_versions = versions(&[("libc6", "2.36-9+deb12u10"), ("apt", "2.6.1")]);
        let base = base_key(&facts, &base_versions);
        for needle in [
            SCHEMA,
            SUITE,
            MIRROR,
            "minbase",
            "debootstrap 1.0.128+nmu2+deb12u2",
            "umoci version 0.4.7",
            "URIs: http://deb.debian.org/debian",
            "libc6 2.36-9+deb12u10",
            "apt 2.6.1",
            BASE_SCRIPT,
        ] {
            assert!(
                base.contains(needle),
                "{needle} not in the base key:\n{base}"
            );
        }
        let mut other = facts;
        other.sources.push_str("Components: main\n");
        assert_ne!(base_key(&other, &base_versions), base);
        let facts = self::facts();

        let jre = versions(&[
            ("openjdk-17-jre-headless", "17.0.21.1+2-1~deb12u1"),
            ("ca-certificates-java", "20230710~deb12u1"),
        ]);
        let layer = layer_key(&JRE, &base, &facts, &jre);
        for needle in [
            "layer jre",
            &sha256_hex(&base),
            "openjdk-17-jre-headless=17.0.21.1+2-1~deb12u1",
            "ca-certificates-java 20230710~deb12u1",
            "useradd --uid 1000",
            "chown -R 1000:1000 /camunda",
            "umoci version 0.4.7",
        ] {
            assert!(
                layer.contains(needle),
                "{needle} not in the layer key:\n{layer}"
            );
        }
        // Another base, another layer.
        assert_ne!(
            layer_key(&JRE, &base_key(&facts, &versions(&[])), &facts, &jre),
            layer
        );

        with_specs(&all_binaries(), true, |specs| {
            let specs = specs.unwrap();
            let camunda = specs
                .iter()
                .find(|s| s.name == "camunda-conformance/camunda:7.24.0")
                .unwrap();
            let sums: Vec<String> = (0..camunda.files.len())
                .map(|i| format!("{i}{i}ab"))
                .collect();
            let key = image_key(camunda, Some(&layer), &facts, &sums);
            for needle in [
                "image camunda-conformance/camunda:7.24.0",
                "docker.io/camunda-conformance/camunda:7.24.0",
                &sha256_hex(&layer),
                "umoci version 0.4.7",
                "/camunda/camunda-app.jar mode 644",
                "/camunda/entrypoint.sh mode 755",
                "sha256 00ab",
                "sha256 33ab",
                "--config.entrypoint=/camunda/entrypoint.sh",
                "--config.user=1000:1000",
                "--config.workingdir=/camunda",
                "--config.env=JAVA_OPTS=-XX:MaxRAMPercentage=75.0 -XX:+ExitOnOutOfMemoryError",
            ] {
                assert!(
                    key.contains(needle),
                    "{needle} not in the image key:\n{key}"
                );
            }
            let mut changed = sums.clone();
            changed[0] = "ffff".into();
            assert_ne!(image_key(camunda, Some(&layer), &facts, &changed), key);
            let pause = &specs[0];
            let key = image_key(pause, None, &facts, &["cafe".into()]);
            for needle in [
                "parent: scratch",
                "gcc 12.2.0",
                "libc6-dev",
                "-static",
                "-DVERSION=3.10",
                "sha256 cafe",
                "--config.user=65535:65535",
            ] {
                assert!(
                    key.contains(needle),
                    "{needle} not in the pause key:\n{key}"
                );
            }
        });
    }

    #[test]
    fn apt_output_is_parsed() {
        let policy = "redis-server:\n  Installed: (none)\n  Candidate: 5:7.0.15-1~deb12u10\n  Version table:\n     5:7.0.15-1~deb12u10 500\nlibfoo:\n  Installed: (none)\n  Candidate: (none)\n";
        assert_eq!(
            parse_policy(policy),
            versions(&[("redis-server", "5:7.0.15-1~deb12u10")])
        );
        let dumpavail = "Package: bash\nPriority: required\nVersion: 5.2\n\nPackage: vim\nPriority: optional\n\nPackage: dash\nPriority: required\n";
        assert_eq!(required_in(dumpavail), ["apt", "bash", "dash"]);
        assert_eq!(
            slug("camunda-conformance/redis:7"),
            "camunda-conformance-redis-7"
        );
    }
}

/// A real build (root, network to the Debian mirror; minutes when cold):
/// `NODE_IMAGE_BINARIES=coredns=/path/to/coredns,… cargo test -p xtask real_build -- --ignored --nocapture`
/// builds every image it can: the Debian ones, pause, one Camunda image per flavour built by
/// Maven in fixtures/camunda-app/target, and one per binary named.
#[cfg(test)]
mod real {
    use super::*;

    #[test]
    #[ignore = "builds real images: root, network, minutes"]
    fn real_build() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = root.join("fixtures/camunda-app/target");
        let flavours: Vec<Flavour> = [Flavour::Ce, Flavour::Operaton]
            .into_iter()
            .filter(|f| target.join(f.name()).join("camunda-app.jar").is_file())
            .collect();
        let paths: Vec<(PathBuf, PathBuf, PathBuf)> = flavours
            .iter()
            .map(|f| {
                let dir = target.join(f.name());
                (
                    dir.join("camunda-app.jar"),
                    dir.join("agent/jmx_prometheus_javaagent.jar"),
                    root.join(f.jmx_config()),
                )
            })
            .collect();
        let apps: Vec<CamundaApp> = flavours
            .iter()
            .zip(&paths)
            .map(|(flavour, (jar, agent, jmx_config))| CamundaApp {
                flavour: *flavour,
                jar,
                agent,
                jmx_config,
            })
            .collect();
        let given = std::env::var("NODE_IMAGE_BINARIES").unwrap_or_default();
        let binaries: Vec<(&str, &Path)> = given
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(program, path)| (program, Path::new(path)))
            .collect();
        let logs = std::env::temp_dir().join("node-images-logs");
        let images = ensure_some(&Inputs {
            root: &root,
            apps: &apps,
            binaries: &binaries,
            logs: &logs,
        })
        .unwrap();
        for image in &images {
            println!("{} {}", image.name, image.archive.display());
        }
        if let Ok(socket) = std::env::var("NODE_IMAGE_CONTAINERD") {
            import(Path::new(&socket), &images, &logs.join("import.log")).unwrap();
        }
    }
}
