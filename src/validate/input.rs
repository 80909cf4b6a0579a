//! Reading the inputs of `validate`: kustomize directories rendered by `kustomize build` or
//! `kubectl kustomize`, Helm charts rendered by `helm template`, and plain manifests
//! (multi-document YAML files or directories of them).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camunda_conformance_controlplane::cmd::{self, Cmd, Waiting};
use serde_json::Value;

use super::yaml::Documents;
use super::InputSummary;

/// The `renderer` of inputs read as plain manifests (no kustomization).
pub const PLAIN_RENDERER: &str = "plain";

/// The Helm release `validate` is tested with, and `.ci/run` installs when `helm` is missing.
pub const HELM_VERSION: &str = "v4.3.2";
/// How to get that `helm` from the Go module proxy.
pub const HELM_INSTALL: &str = "go install helm.sh/helm/v4/cmd/helm@v4.3.2";

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
/// A render is a local computation of seconds; past this something hangs (a chart's `lookup`
/// or a remote base waiting on the network).
const RENDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an input could not be read; the CLI maps it to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: no such file or directory")]
    Missing { path: String },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no manifests (*.yaml, *.yml, *.json) in this directory")]
    Empty { path: String },
    #[error("{path}: malformed YAML in document {doc}: {message}")]
    Malformed {
        path: String,
        doc: usize,
        message: String,
    },
    #[error("{path}: document {doc} is not a mapping but {found}")]
    NotMapping {
        path: String,
        doc: usize,
        found: &'static str,
    },
    #[error("{path}: document {doc} is not a Kubernetes object: {problem}")]
    NotObject {
        path: String,
        doc: usize,
        problem: String,
    },
    #[error("{path}: neither `kustomize` nor `kubectl` is on PATH to render this kustomization")]
    NoRenderer { path: String },
    #[error("{path}: a Helm chart (Chart.yaml), and `helm` is not on PATH to render it: install it with `{HELM_INSTALL}` (tested with helm {HELM_VERSION})")]
    NoHelm { path: String },
    #[error("{path}: values file {values}: no such file")]
    MissingValues { path: String, values: String },
    #[error("--values and --set apply to Helm charts (a directory with Chart.yaml), and none of {paths} is one")]
    ValuesWithoutChart { paths: String },
    #[error("{path}: {renderer} failed: {message}")]
    Render {
        path: String,
        renderer: String,
        message: String,
    },
}

/// How inputs are rendered: the values given to every Helm chart among them.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--values FILE`, in order (later files win, as with helm).
    pub values: Vec<PathBuf>,
    /// `--set KEY=VALUE`, in order.
    pub set: Vec<String>,
}

impl Options {
    /// Values given while no path is a chart would be silently ignored: refuse them.
    pub fn check_against(&self, paths: &[PathBuf]) -> Result<(), InputError> {
        let has_values = !self.values.is_empty() || !self.set.is_empty();
        if has_values && !paths.iter().any(|p| chart_root(p).is_some()) {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(InputError::ValuesWithoutChart {
                paths: shown.join(", "),
            });
        }
        Ok(())
    }
}

/// One object as read, before any schema check.
#[derive(Clone, Debug)]
pub struct RawObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub file: Option<String>,
    /// The 1-based line of `file` the object is written at, when known: the document's first
    /// line in a manifest, its `kind:` line in a kustomize source file or a chart's template.
    pub line: Option<usize>,
    pub value: Value,
}

/// Where the objects of an input go, one at a time as each document is read, so that a caller
/// can reduce each to what it needs before the next is parsed.
pub type Sink<'s> = dyn FnMut(RawObject) + 's;

/// Renders or reads one path given on the command line and hands each object to `sink`; the
/// summary's `render_ms` includes the time spent in `sink`.
pub fn load(path: &Path, options: &Options, sink: &mut Sink) -> Result<InputSummary, InputError> {
    let started = Instant::now();
    let shown = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => InputError::Missing {
            path: shown.clone(),
        },
        _ => InputError::Io {
            path: shown.clone(),
            source,
        },
    })?;
    let kustomize_root = if metadata.is_dir() {
        KUSTOMIZATION_FILES
            .iter()
            .any(|name| path.join(name).is_file())
            .then(|| path.to_path_buf())
    } else {
        let is_kustomization = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| KUSTOMIZATION_FILES.contains(&n));
        is_kustomization.then(|| path.parent().unwrap_or(Path::new(".")).to_path_buf())
    };
    let mut objects = 0;
    let mut counted = |object: RawObject| {
        objects += 1;
        sink(object);
    };
    let renderer = match (kustomize_root, chart_root(path)) {
        (Some(root), _) => render_kustomization(&root, &mut counted)?.to_string(),
        (None, Some(chart)) => render_chart(&chart, options, &mut counted)?,
        (None, None) if metadata.is_dir() => {
            read_dir(path, &mut counted)?;
            PLAIN_RENDERER.to_string()
        }
        (None, None) => {
            read_file(path, &mut counted)?;
            PLAIN_RENDERER.to_string()
        }
    };
    Ok(InputSummary {
        path: path.to_path_buf(),
        renderer,
        objects,
        render_ms: started.elapsed().as_millis(),
    })
}

fn read_dir(dir: &Path, sink: &mut Sink) -> Result<(), InputError> {
    let mut files = Vec::new();
    collect_manifest_files(dir, &mut files)?;
    if files.is_empty() {
        return Err(InputError::Empty {
            path: dir.display().to_string(),
        });
    }
    files.sort();
    for file in files {
        read_file(&file, sink)?;
    }
    Ok(())
}

fn collect_manifest_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io = |source| InputError::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_manifest_files(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
    Ok(())
}

fn read_file(path: &Path, sink: &mut Sink) -> Result<(), InputError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| InputError::Io {
        path: shown.clone(),
        source,
    })?;
    let documents = Documents::from_reader(file);
    if each_document(documents, &shown, Some(shown.clone()), sink)? == 0 {
        return Err(InputError::Empty { path: shown });
    }
    Ok(())
}

/// Parses a multi-document YAML stream into objects attributed to `file`; `List` objects are
/// flattened into their items. `shown` names the input in errors.
pub fn parse_documents(
    text: &str,
    shown: &str,
    file: Option<String>,
) -> Result<Vec<RawObject>, InputError> {
    let mut objects = Vec::new();
    each_document(Documents::new(text), shown, file, &mut |object| {
        objects.push(object)
    })?;
    Ok(objects)
}

/// [`parse_documents`] handing each object to `sink` as soon as its document is parsed;
/// returns how many there were.
fn each_document(
    documents: Documents,
    shown: &str,
    file: Option<String>,
    sink: &mut Sink,
) -> Result<usize, InputError> {
    let mut objects = 0;
    let mut counted = |object: RawObject| {
        objects += 1;
        sink(object);
    };
    let mut documents = documents;
    let mut doc = 0;
    while let Some(document) = documents.next() {
        doc += 1;
        let value = document.map_err(|err| InputError::Malformed {
            path: shown.to_string(),
            doc: err.document,
            message: err.message,
        })?;
        let at = Place {
            file: file.clone(),
            line: documents.line(),
        };
        match value {
            Value::Null => {}
            Value::Object(_) => push_object(value, shown, doc, &at, &mut counted)?,
            other => {
                return Err(InputError::NotMapping {
                    path: shown.to_string(),
                    doc,
                    found: json_type(&other),
                })
            }
        }
    }
    Ok(objects)
}

/// Where a document was read: its file and the line it starts at.
struct Place {
    file: Option<String>,
    line: usize,
}

fn push_object(
    mut value: Value,
    shown: &str,
    doc: usize,
    at: &Place,
    sink: &mut Sink,
) -> Result<(), InputError> {
    let not_object = |problem: &str| InputError::NotObject {
        path: shown.to_string(),
        doc,
        problem: problem.to_string(),
    };
    let text_field = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    let api_version = text_field("apiVersion").ok_or_else(|| not_object("no apiVersion"))?;
    let kind = text_field("kind").ok_or_else(|| not_object("no kind"))?;
    if kind.ends_with("List") && api_version == "v1" {
        if let Some(Value::Array(items)) = value.get_mut("items") {
            for item in std::mem::take(items) {
                if !item.is_object() {
                    return Err(not_object("an item of the List is not a mapping"));
                }
                push_object(item, shown, doc, at, sink)?;
            }
            return Ok(());
        }
    }
    let metadata = value.get("metadata");
    let meta_text = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = meta_text("name")
        .or_else(|| meta_text("generateName"))
        .ok_or_else(|| not_object("no metadata.name"))?;
    sink(RawObject {
        api_version,
        kind,
        name,
        namespace: meta_text("namespace"),
        file: at.file.clone(),
        line: Some(at.line),
        value,
    });
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

#[derive(Clone, Copy)]
enum Renderer {
    Kustomize,
    Kubectl,
}

impl Renderer {
    fn name(self) -> &'static str {
        match self {
            Renderer::Kustomize => "kustomize",
            Renderer::Kubectl => "kubectl kustomize",
        }
    }

    fn command(self, dir: &Path) -> Command {
        let mut command = match self {
            Renderer::Kustomize => {
                let mut c = Command::new("kustomize");
                c.arg("build");
                c
            }
            Renderer::Kubectl => {
                let mut c = Command::new("kubectl");
                c.arg("kustomize");
                c
            }
        };
        command.arg(dir);
        command
    }

    /// A standalone `kustomize` binary when present (it follows upstream more closely), else
    /// the one built into kubectl.
    fn find() -> Option<Renderer> {
        if on_path("kustomize") {
            Some(Renderer::Kustomize)
        } else if on_path("kubectl") {
            Some(Renderer::Kubectl)
        } else {
            None
        }
    }
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(binary).is_file()))
}

/// What a bounded render left: its exit status, its standard output as a file to read from (a
/// large render is streamed, never held whole), and its standard error.
struct Rendered {
    success: bool,
    stdout: File,
    stdout_path: PathBuf,
    stderr: String,
    /// Holds the output files until the render is read.
    _dir: tempfile::TempDir,
}

/// Runs a renderer within [`RENDER_TIMEOUT`]; on expiry it is killed and the error says what it
/// printed last. `what` names it in errors, never with its arguments (`--set` values may be
/// secrets).
fn run_bounded(mut command: Command, what: &str) -> Result<Rendered, String> {
    let dir = tempfile::Builder::new()
        .prefix("camunda-conformance-render-")
        .tempdir()
        .map_err(|err| format!("cannot create a temp dir for its output: {err}"))?;
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let create = |path: &Path| {
        File::create(path).map_err(|err| format!("cannot create {}: {err}", path.display()))
    };
    command
        .stdin(Stdio::null())
        .stdout(create(&stdout_path)?)
        .stderr(create(&stderr_path)?);
    let mut started = cmd::start(&mut command, what).map_err(|err| format!("{err:#}"))?;
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let status = started
        .wait_bounded(
            what,
            RENDER_TIMEOUT,
            Waiting {
                heartbeat: false,
                tick: &mut || {},
                last_output: &|| last_error_line(&stderr()),
            },
        )
        .map_err(|err| format!("{err:#}"))?;
    let stdout = File::open(&stdout_path)
        .map_err(|err| format!("cannot read its output {}: {err}", stdout_path.display()))?;
    Ok(Rendered {
        success: status.success(),
        stdout,
        stdout_path,
        stderr: stderr(),
        _dir: dir,
    })
}

/// Renders `root` through a throw-away wrapper kustomization that only adds
/// `buildMetadata: [originAnnotations]`, so each object names the file it came from without
/// touching the user's overlay. When the wrapper cannot be used (e.g. no relative path from the
/// temp dir), the overlay is rendered directly and findings name the kustomization.
fn render_kustomization(root: &Path, sink: &mut Sink) -> Result<&'static str, InputError> {
    let shown = root.display().to_string();
    let renderer = Renderer::find().ok_or_else(|| InputError::NoRenderer {
        path: shown.clone(),
    })?;
    let kustomization = KUSTOMIZATION_FILES
        .iter()
        .map(|name| root.join(name))
        .find(|p| p.is_file())
        .map(|p| display_path(&p))
        .unwrap_or_else(|| shown.clone());
    let absolute = std::fs::canonicalize(root).map_err(|source| InputError::Io {
        path: shown.clone(),
        source,
    })?;
    if render_wrapped(renderer, &absolute, &shown, &kustomization, sink)? {
        return Ok(renderer.name());
    }
    let render_error = |message| InputError::Render {
        path: shown.clone(),
        renderer: renderer.name().to_string(),
        message,
    };
    let rendered = run_bounded(renderer.command(root), renderer.name()).map_err(render_error)?;
    if !rendered.success {
        return Err(render_error(last_error_line(&rendered.stderr)));
    }
    each_document(
        Documents::from_reader(rendered.stdout),
        &shown,
        Some(kustomization),
        sink,
    )?;
    Ok(renderer.name())
}

/// False when the wrapper could not be used (nothing was handed to `sink` then).
fn render_wrapped(
    renderer: Renderer,
    absolute_root: &Path,
    shown: &str,
    kustomization: &str,
    sink: &mut Sink,
) -> Result<bool, InputError> {
    let Ok(wrapper) = tempfile::Builder::new()
        .prefix("camunda-conformance-")
        .tempdir()
    else {
        return Ok(false);
    };
    let Ok(wrapper_dir) = std::fs::canonicalize(wrapper.path()) else {
        return Ok(false);
    };
    let relative = relative_path(&wrapper_dir, absolute_root);
    let Some(relative) = relative.to_str() else {
        return Ok(false);
    };
    let text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {}\nbuildMetadata: [originAnnotations]\n",
        serde_json::Value::String(relative.to_string())
    );
    if std::fs::write(wrapper_dir.join("kustomization.yaml"), text).is_err() {
        return Ok(false);
    }
    match run_bounded(renderer.command(&wrapper_dir), renderer.name()) {
        Ok(rendered) if rendered.success => {
            let mut sources = SourceFiles::default();
            each_document(
                Documents::from_reader(rendered.stdout),
                shown,
                None,
                &mut |mut object: RawObject| {
                    match take_origin(&mut object.value, &wrapper_dir) {
                        Some(Origin::Local(path)) => {
                            let (file, line) = sources.locate(&path, &object, None);
                            object.file = Some(file);
                            object.line = line;
                        }
                        Some(Origin::Remote(file)) => {
                            object.file = Some(file);
                            object.line = None;
                        }
                        None => {
                            object.file = Some(kustomization.to_string());
                            object.line = None;
                        }
                    }
                    sink(object);
                },
            )?;
            Ok(true)
        }
        // The direct render reports the failure with the user's own paths.
        _ => Ok(false),
    }
}

/// The chart directory when `path` is one (it holds `Chart.yaml`) or is its `Chart.yaml`.
fn chart_root(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        return path
            .join("Chart.yaml")
            .is_file()
            .then(|| path.to_path_buf());
    }
    let is_chart_file = path.file_name().and_then(|n| n.to_str()) == Some("Chart.yaml");
    is_chart_file.then(|| path.parent().unwrap_or(Path::new(".")).to_path_buf())
}

/// `helm version`'s own word (`v4.3.2`), or why it gave none. A helm built by `go install`
/// knows only its minor version (`v4.3`: the release sets the rest at link time); its module
/// version then comes from the Go toolchain's reading of the binary.
fn helm_version() -> String {
    let quick = |program: &str, args: &[&str]| {
        Cmd::new(program, args.iter().copied())
            .timeout(Duration::from_secs(20))
            .output()
            .ok()
    };
    let Some(own) = quick("helm", &["version", "--template", "{{.Version}}"])
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return "(version unknown: `helm version` failed)".to_string();
    };
    if own.matches('.').count() >= 2 {
        return own;
    }
    let module = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("helm"))
                .find(|helm| helm.is_file())
        })
        .and_then(|helm| quick("go", &["version", "-m", &helm.display().to_string()]))
        .and_then(|info| {
            info.lines().find_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next() == Some("mod") && fields.next()?.starts_with("helm.sh/helm/"))
                    .then(|| fields.next().map(str::to_string))
                    .flatten()
            })
        });
    match module {
        Some(module) => module,
        None => own,
    }
}

/// Renders a chart with `helm template` (test hooks left out: they run only on `helm test`)
/// and the values of `options`; each object is attributed to the template it came from (the
/// `# Source:` comment helm writes before it) at the line of the template's `kind:`. Returns
/// the renderer with its version.
fn render_chart(chart: &Path, options: &Options, sink: &mut Sink) -> Result<String, InputError> {
    let shown = chart.display().to_string();
    if let Some(missing) = options.values.iter().find(|v| !v.is_file()) {
        return Err(InputError::MissingValues {
            path: shown,
            values: missing.display().to_string(),
        });
    }
    if !on_path("helm") {
        return Err(InputError::NoHelm { path: shown });
    }
    let version = helm_version();
    // Errors name the chart with its values files (never the `--set` values).
    let mut described = shown.clone();
    if !options.values.is_empty() {
        let files: Vec<String> = options
            .values
            .iter()
            .map(|v| v.display().to_string())
            .collect();
        described.push_str(&format!(" with values {}", files.join(", ")));
    }
    if !options.set.is_empty() {
        described.push_str(&format!(" and {} --set value(s)", options.set.len()));
    }
    let mut command = Command::new("helm");
    command.arg("template").arg(chart).arg("--skip-tests");
    for values in &options.values {
        command.arg("--values").arg(values);
    }
    for set in &options.set {
        command.arg("--set").arg(set);
    }
    let render_error = |message| InputError::Render {
        path: described.clone(),
        renderer: format!("helm template (helm {version})"),
        message,
    };
    let rendered = run_bounded(command, &format!("helm template {shown}")).map_err(render_error)?;
    if !rendered.success {
        return Err(render_error(helm_error(&rendered.stderr)));
    }
    let helm_sources =
        HelmSources::scan(&rendered.stdout_path).map_err(|source| InputError::Io {
            path: rendered.stdout_path.display().to_string(),
            source,
        })?;
    let mut files = SourceFiles::default();
    // Per template and kind, the objects seen so far: the n-th one is written at the n-th
    // `kind:` line of that kind in the template.
    let mut seen: HashMap<(usize, String), usize> = HashMap::new();
    each_document(
        Documents::from_reader(rendered.stdout),
        &described,
        None,
        &mut |mut object: RawObject| {
            let source = object.line.and_then(|line| helm_sources.before(line));
            match source {
                Some((index, path)) => {
                    let count = seen.entry((index, object.kind.clone())).or_default();
                    let (file, line) =
                        files.locate(&template_path(chart, path), &object, Some(*count));
                    *count += 1;
                    object.file = Some(file);
                    object.line = line;
                }
                None => {
                    object.file = Some(shown.clone());
                    object.line = None;
                }
            }
            sink(object);
        },
    )?;
    Ok(format!("helm {version}"))
}

/// helm's `Error:` paragraph on one line (a template error spans several lines, then helm
/// adds a hint about `--debug`), else its last line.
fn helm_error(stderr: &str) -> String {
    let Some(start) = stderr.find("Error: ") else {
        return last_error_line(stderr);
    };
    let paragraph = stderr[start + "Error: ".len()..]
        .split("\n\n")
        .next()
        .unwrap_or_default();
    paragraph.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The file of a `# Source:` path (`<chart name>/templates/x.yaml`, or
/// `<chart name>/charts/<subchart>/templates/x.yaml`), below the chart directory given.
fn template_path(chart: &Path, source: &str) -> PathBuf {
    let below_chart = source.split_once('/').map_or(source, |(_, rest)| rest);
    chart.join(below_chart)
}

/// The `# Source:` comments of helm's output: the line of each and the template it names
/// (distinct templates stored once: a large render names a few templates many times).
struct HelmSources {
    at: Vec<(usize, usize)>,
    templates: Vec<String>,
}

impl HelmSources {
    fn scan(path: &Path) -> std::io::Result<HelmSources> {
        let mut sources = HelmSources {
            at: Vec::new(),
            templates: Vec::new(),
        };
        let mut index_of: HashMap<String, usize> = HashMap::new();
        for (number, line) in BufReader::new(File::open(path)?).lines().enumerate() {
            let line = line?;
            if let Some(template) = line.strip_prefix("# Source: ") {
                let next = sources.templates.len();
                let index = *index_of.entry(template.trim().to_string()).or_insert(next);
                if index == next {
                    sources.templates.push(template.trim().to_string());
                }
                sources.at.push((number + 1, index));
            }
        }
        Ok(sources)
    }

    /// The template of the object whose document starts at `line`: the last `# Source:`
    /// before it.
    fn before(&self, line: usize) -> Option<(usize, &str)> {
        let count = self.at.partition_point(|(at, _)| *at < line);
        let (_, index) = *self.at.get(count.checked_sub(1)?)?;
        Some((index, &self.templates[index]))
    }
}

/// Source files (kustomize resources, chart templates) read once each, with where each of
/// their documents declares its kind and name.
#[derive(Default)]
struct SourceFiles {
    files: HashMap<PathBuf, (String, Vec<SourceDocument>)>,
}

/// A document of a source file: its top-level `kind:` (and the line of it) and its
/// `metadata.name` when written literally.
struct SourceDocument {
    kind: String,
    line: usize,
    name: Option<String>,
}

impl SourceFiles {
    /// The file as shown in findings, and the line where `object` is written in it: the
    /// document of its kind whose literal name it carries (kustomize adds prefixes and
    /// suffixes), else the `nth` of its kind (a chart's templated names), else none.
    fn locate(
        &mut self,
        path: &Path,
        object: &RawObject,
        nth: Option<usize>,
    ) -> (String, Option<usize>) {
        let (shown, documents) = self.files.entry(path.to_path_buf()).or_insert_with(|| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            (display_path(path), source_documents(&text))
        });
        let of_kind = || documents.iter().filter(|d| d.kind == object.kind);
        let by_name = of_kind()
            .filter_map(|d| {
                let name = d.name.as_deref()?;
                object.name.contains(name).then_some((name.len(), d.line))
            })
            .max_by_key(|(length, _)| *length)
            .map(|(_, line)| line);
        let by_position = nth.and_then(|n| of_kind().nth(n).or_else(|| of_kind().next_back()));
        (shown.clone(), by_name.or(by_position.map(|d| d.line)))
    }
}

/// The documents of a source file, split at its `---` lines; template directives are text
/// like any other, so a templated kind or name is simply not literal.
fn source_documents(text: &str) -> Vec<SourceDocument> {
    let mut documents = Vec::new();
    let mut kind: Option<(String, usize)> = None;
    let mut name = None;
    let mut in_metadata = false;
    let mut finish = |kind: &mut Option<(String, usize)>, name: &mut Option<String>| {
        if let Some((kind, line)) = kind.take() {
            documents.push(SourceDocument {
                kind,
                line,
                name: name.take(),
            });
        }
        *name = None;
    };
    for (number, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            finish(&mut kind, &mut name);
            in_metadata = false;
            continue;
        }
        let scalar = |value: &str| {
            let value = value.split(" #").next().unwrap_or("").trim();
            value.trim_matches(|c| c == '"' || c == '\'').to_string()
        };
        if let Some(value) = line.strip_prefix("kind:") {
            if kind.is_none() {
                kind = Some((scalar(value), number + 1));
            }
        } else if line.starts_with("metadata:") {
            in_metadata = true;
        } else if !line.starts_with([' ', '#']) && !line.trim().is_empty() {
            in_metadata = false;
        } else if in_metadata && name.is_none() {
            if let Some(value) = line.trim_start().strip_prefix("name:") {
                let value = scalar(value);
                if !value.is_empty() && !value.contains("{{") {
                    name = Some(value);
                }
            }
        }
    }
    finish(&mut kind, &mut name);
    documents
}

/// kubectl prefixes klog noise; the useful part is the `err=` text or the last non-empty line.
fn last_error_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no error output")
        .trim();
    match line.split_once("err=") {
        Some((_, err)) => err
            .trim_matches('"')
            .replace("\\\"", "\"")
            .replace("\\'", "'"),
        None => line.trim_start_matches("Error: ").to_string(),
    }
}

/// Where kustomize's origin annotation says an object came from.
enum Origin {
    /// A local file (resolved from the wrapper dir).
    Local(PathBuf),
    /// A remote base: `repo//path`, as shown.
    Remote(String),
}

/// Removes kustomize's origin annotation and returns the source it names.
fn take_origin(value: &mut Value, wrapper_dir: &Path) -> Option<Origin> {
    let annotations = value
        .get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()?;
    let origin = annotations.remove(ORIGIN_ANNOTATION)?;
    if annotations.is_empty() {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("annotations");
        }
    }
    let origin = Documents::new(origin.as_str()?).next()?.ok()?;
    let source = origin
        .get("path")
        .or_else(|| origin.get("configuredIn"))?
        .as_str()?;
    if let Some(repo) = origin.get("repo").and_then(Value::as_str) {
        return Some(Origin::Remote(format!("{repo}//{source}")));
    }
    Some(Origin::Local(normalize(&wrapper_dir.join(source))))
}

fn display_path(path: &Path) -> String {
    let absolute = if path.is_absolute() {
        normalize(path)
    } else {
        return path.display().to_string();
    };
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| std::fs::canonicalize(cwd).ok())
        .and_then(|cwd| absolute.strip_prefix(&cwd).ok().map(Path::to_path_buf))
    {
        Some(relative) => relative.display().to_string(),
        None => absolute.display().to_string(),
    }
}

/// Lexical normalisation (`a/b/../c` → `a/c`); the files may not exist under these names.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for component in &to[common..] {
        out.push(component);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_climbs_to_the_common_ancestor() {
        assert_eq!(
            relative_path(Path::new("/tmp/x"), Path::new("/work/main/o")),
            PathBuf::from("../../work/main/o")
        );
    }

    #[test]
    fn kubectl_klog_line_is_reduced_to_the_error() {
        let stderr = "E1125 run.go:72] \"command failed\" err=\"accumulating resources: 'x' must resolve\"\n";
        assert_eq!(
            last_error_line(stderr),
            "accumulating resources: 'x' must resolve"
        );
    }
}
