//! Reading the inputs of `validate`: kustomize directories rendered by `kustomize build` or
//! `kubectl kustomize`, and plain manifests (multi-document YAML files or directories of them).

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use super::yaml::Documents;
use super::InputSummary;

/// The `renderer` of inputs read as plain manifests (no kustomization).
pub const PLAIN_RENDERER: &str = "plain";

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";

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
    #[error("{path}: {renderer} failed: {message}")]
    Render {
        path: String,
        renderer: &'static str,
        message: String,
    },
}

/// One object as read, before any schema check.
#[derive(Clone, Debug)]
pub struct RawObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub file: Option<String>,
    pub value: Value,
}

/// Where the objects of an input go, one at a time as each document is read, so that a caller
/// can reduce each to what it needs before the next is parsed.
pub type Sink<'s> = dyn FnMut(RawObject) + 's;

/// Renders or reads one path given on the command line and hands each object to `sink`; the
/// summary's `render_ms` includes the time spent in `sink`.
pub fn load(path: &Path, sink: &mut Sink) -> Result<InputSummary, InputError> {
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
    let renderer = match kustomize_root {
        Some(root) => render_kustomization(&root, &mut counted)?,
        None if metadata.is_dir() => {
            read_dir(path, &mut counted)?;
            PLAIN_RENDERER
        }
        None => {
            read_file(path, &mut counted)?;
            PLAIN_RENDERER
        }
    };
    Ok(InputSummary {
        path: path.to_path_buf(),
        renderer: renderer.to_string(),
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
    for (index, document) in documents.enumerate() {
        let doc = index + 1;
        let value = document.map_err(|err| InputError::Malformed {
            path: shown.to_string(),
            doc: err.document,
            message: err.message,
        })?;
        match value {
            Value::Null => {}
            Value::Object(_) => push_object(value, shown, doc, file.clone(), &mut counted)?,
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

fn push_object(
    mut value: Value,
    shown: &str,
    doc: usize,
    file: Option<String>,
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
                push_object(item, shown, doc, file.clone(), sink)?;
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
        file,
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
        let path = std::env::var_os("PATH")?;
        let on_path = |binary: &str| std::env::split_paths(&path).any(|d| d.join(binary).is_file());
        if on_path("kustomize") {
            Some(Renderer::Kustomize)
        } else if on_path("kubectl") {
            Some(Renderer::Kubectl)
        } else {
            None
        }
    }
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
    let stdout = run_renderer(renderer, root, &shown)?;
    each_document(Documents::new(&stdout), &shown, Some(kustomization), sink)?;
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
    let output = renderer.command(&wrapper_dir).output();
    match output {
        Ok(out) if out.status.success() => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            each_document(
                Documents::new(&stdout),
                shown,
                None,
                &mut |mut object: RawObject| {
                    object.file = Some(
                        take_origin(&mut object.value, &wrapper_dir)
                            .unwrap_or_else(|| kustomization.to_string()),
                    );
                    sink(object);
                },
            )?;
            Ok(true)
        }
        // The direct render reports the failure with the user's own paths.
        _ => Ok(false),
    }
}

fn run_renderer(renderer: Renderer, root: &Path, shown: &str) -> Result<String, InputError> {
    let output = renderer
        .command(root)
        .output()
        .map_err(|err| InputError::Render {
            path: shown.to_string(),
            renderer: renderer.name(),
            message: format!("cannot start: {err}"),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(InputError::Render {
            path: shown.to_string(),
            renderer: renderer.name(),
            message: last_error_line(&stderr),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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

/// Removes kustomize's origin annotation and returns the source file it names (resolved from
/// the wrapper dir, shown relative to the working directory when below it).
fn take_origin(value: &mut Value, wrapper_dir: &Path) -> Option<String> {
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
        return Some(format!("{repo}//{source}"));
    }
    Some(display_path(&normalize(&wrapper_dir.join(source))))
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
