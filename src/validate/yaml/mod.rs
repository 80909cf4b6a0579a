//! Multi-document YAML read into `serde_json::Value`, with the scalar resolution of
//! `serde_yaml` 0.9 (YAML 1.2's core schema: `0123` stays a string, `yes` is not a boolean).
//! Each document is first given to the [`fast`] reader, which reads the subset manifests are
//! written in; a document it leaves is read by libyaml alone, straight from its events into
//! values (`serde_yaml` would copy every event of a document and then go through serde). Only a
//! directive, a `...` or an error hands the rest of the stream to libyaml. The test
//! `resolves_like_serde_yaml` holds both readers to `serde_yaml`'s values.

mod fast;

use std::ffi::{c_void, CStr};
use std::io::{BufRead, BufReader, Read};
use std::mem::MaybeUninit;

use serde_json::{Map, Value};

/// Nesting deeper than this is refused, as `serde_yaml` does (values are dropped recursively).
const DEPTH_LIMIT: usize = 128;
/// Nodes that aliases may add to one document: a "billion laughs" document stops here.
const ALIAS_NODE_LIMIT: usize = 1_000_000;

/// Why a document could not be read: the 1-based document and what libyaml or the resolution
/// said (never a scalar's value: values may be secrets).
#[derive(Debug, PartialEq, Eq)]
pub struct YamlError {
    pub document: usize,
    pub message: String,
}

/// The documents of a YAML stream, one `Value` each (`Null` for an empty document).
pub struct Documents<'t> {
    reader: Reading<'t>,
}

enum Reading<'t> {
    Fast(Box<FastStream<'t>>),
    Libyaml(Libyaml<'t>),
    /// Only while the fast reader hands the stream over to libyaml.
    HandingOver,
}

/// The stream cut into documents at their `---` lines, each read by the [`fast`] reader.
struct FastStream<'t> {
    source: Box<dyn BufRead + 't>,
    /// The current document's bytes, its `---` line first unless it is the stream's first.
    document: Vec<u8>,
    /// The `---` line that starts the next document, read ahead.
    next_marker: Vec<u8>,
    /// Lines before the current document.
    lines: usize,
    /// Documents read so far.
    documents: usize,
    /// The 1-based line of the last document's first node.
    start_line: usize,
    finished: bool,
}

/// libyaml's reading of a stream, or of its rest from the document the fast reader left.
struct Libyaml<'t> {
    parser: Box<unsafe_libyaml::yaml_parser_t>,
    /// What libyaml reads through [`read_handler`] (boxed: libyaml holds its address); dropped
    /// after the parser.
    source: Box<ReadSource<'t>>,
    /// Documents started so far.
    started: usize,
    /// Documents and lines of the stream before what libyaml reads, for its errors.
    documents_before: usize,
    lines_before: usize,
    /// A stream without documents reads as one `Null`, as with `serde_yaml`; not so a single
    /// document read alone.
    null_when_empty: bool,
    in_document: bool,
    /// The 1-based line of the current document's first node.
    start_line: usize,
    finished: bool,
}

struct ReadSource<'t> {
    reader: Box<dyn Read + 't>,
    /// The reader's failure, which libyaml only reports as "input error".
    error: Option<std::io::Error>,
}

/// libyaml's read callback over a [`ReadSource`].
///
/// # Safety
/// `data` is the `ReadSource` registered with the parser, `buffer` holds `size` writable bytes.
unsafe fn read_handler(data: *mut c_void, buffer: *mut u8, size: u64, size_read: *mut u64) -> i32 {
    // SAFETY: the contract above; libyaml calls this only while the parser, and so the boxed
    // source, is alive.
    let (source, buffer) = unsafe {
        (
            &mut *data.cast::<ReadSource>(),
            std::slice::from_raw_parts_mut(buffer, size as usize),
        )
    };
    loop {
        match source.reader.read(buffer) {
            Ok(read) => {
                // SAFETY: libyaml passes a valid pointer for the count.
                unsafe { *size_read = read as u64 };
                return 1;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                source.error = Some(err);
                return 0;
            }
        }
    }
}

impl<'t> Documents<'t> {
    /// The documents of a text held in memory (a renderer's output).
    pub fn new(text: &'t str) -> Self {
        Self::from_reader(text.as_bytes())
    }

    /// The documents of a file or another reader, read a document at a time: a large manifest
    /// is never held whole in memory.
    pub fn from_reader(reader: impl Read + 't) -> Self {
        Documents {
            reader: Reading::Fast(Box::new(FastStream {
                source: Box::new(BufReader::with_capacity(16 * 1024, reader)),
                document: Vec::new(),
                next_marker: Vec::new(),
                lines: 0,
                documents: 0,
                start_line: 0,
                finished: false,
            })),
        }
    }

    /// libyaml alone, as the fast reader's tests compare.
    #[cfg(test)]
    fn libyaml(reader: impl Read + 't) -> Self {
        Documents {
            reader: Reading::Libyaml(Libyaml::new(Box::new(reader), 0, 0)),
        }
    }
}

impl Documents<'_> {
    /// The 1-based line of the stream where the document last returned starts (its first
    /// node, after the `---` line and leading comments): where findings about it point.
    pub fn line(&self) -> usize {
        match &self.reader {
            Reading::Fast(fast) => fast.start_line,
            Reading::Libyaml(libyaml) => libyaml.start_line,
            Reading::HandingOver => 0,
        }
    }
}

/// A `---` line: the start of a document.
fn is_marker(line: &[u8]) -> bool {
    line.starts_with(b"---") && matches!(line.get(3), None | Some(b' ' | b'\n' | b'\t' | b'\r'))
}

/// The 1-based line, within a document's bytes, of its first line that is neither its `---`
/// marker, blank nor a comment (its last line when it has none).
fn first_content_line(document: &[u8], explicit: bool) -> usize {
    let mut last = 0;
    for (index, line) in document.split(|&b| b == b'\n').enumerate() {
        last = index + 1;
        if index == 0 && explicit {
            continue;
        }
        let text = line.trim_ascii_start();
        if !text.is_empty() && !text.starts_with(b"#") {
            return index + 1;
        }
    }
    last
}

/// What the fast reader made of the next document.
enum FastRead {
    Document(Value),
    /// A comment before the first `---`: no document.
    Nothing,
    Failed(YamlError),
    /// The rest of the stream, from the current document on, is libyaml's.
    Unsupported,
    End,
}

impl<'t> FastStream<'t> {
    fn read(&mut self) -> FastRead {
        if self.finished {
            return FastRead::End;
        }
        self.lines += self.document.iter().filter(|&&b| b == b'\n').count();
        self.document.clear();
        self.document.append(&mut self.next_marker);
        let explicit = !self.document.is_empty();
        loop {
            let start = self.document.len();
            match self.source.read_until(b'\n', &mut self.document) {
                Ok(0) => break,
                Ok(_) if is_marker(&self.document[start..]) => {
                    self.next_marker.extend_from_slice(&self.document[start..]);
                    self.document.truncate(start);
                    break;
                }
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.finished = true;
                    return FastRead::Failed(YamlError {
                        document: self.documents + 1,
                        message: format!("reading failed: {err}"),
                    });
                }
            }
        }
        if !explicit && self.document.is_empty() && self.next_marker.is_empty() {
            self.finished = true;
            // An empty stream reads as one empty document, as with `serde_yaml`.
            return match self.documents {
                0 => {
                    self.documents = 1;
                    FastRead::Document(Value::Null)
                }
                _ => FastRead::End,
            };
        }
        let Ok(text) = std::str::from_utf8(&self.document) else {
            return FastRead::Unsupported;
        };
        let read = match fast::document(text, explicit) {
            Ok(read) => read,
            Err(fast::Unsupported) => match self.libyaml_alone() {
                Some(read) => read,
                None => return FastRead::Unsupported,
            },
        };
        match read {
            Some(value) => {
                self.documents += 1;
                self.start_line = self.lines + first_content_line(&self.document, explicit);
                FastRead::Document(value)
            }
            None => FastRead::Nothing,
        }
    }

    /// The current document read by libyaml on its own, so that the fast reader goes on with
    /// the next one (a block scalar in one ConfigMap leaves the rest of a bundle fast). `None`
    /// when only the rest of the stream can tell: a directive or `...` (they concern the next
    /// document), or an error (whose position and wording depend on what follows).
    fn libyaml_alone(&self) -> Option<Option<Value>> {
        let mut lines = self.document.split(|&b| b == b'\n');
        if lines.any(|line| line.starts_with(b"%") || line.starts_with(b"...")) {
            return None;
        }
        let mut libyaml = Libyaml::new(Box::new(&self.document[..]), 0, 0);
        libyaml.null_when_empty = false;
        let mut values = Vec::new();
        for document in libyaml {
            values.push(document.ok()?);
        }
        // Split at its `---` lines and without `...`, a document cannot hold two.
        (values.len() <= 1).then(|| values.pop())
    }

    /// libyaml over the rest of the stream, from the current document on.
    fn into_libyaml(mut self) -> Libyaml<'t> {
        let document = std::io::Cursor::new(std::mem::take(&mut self.document));
        let marker = std::io::Cursor::new(std::mem::take(&mut self.next_marker));
        let rest = document.chain(marker).chain(self.source);
        Libyaml::new(Box::new(rest), self.documents, self.lines)
    }
}

impl<'t> Libyaml<'t> {
    fn new(reader: Box<dyn Read + 't>, documents_before: usize, lines_before: usize) -> Self {
        let mut parser = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
        // SAFETY: initialize fills the whole struct (it fails only when out of memory).
        let mut parser = unsafe {
            let initialised = unsafe_libyaml::yaml_parser_initialize(parser.as_mut_ptr());
            assert!(initialised.ok, "libyaml could not allocate its parser");
            Box::from_raw(Box::into_raw(parser).cast::<unsafe_libyaml::yaml_parser_t>())
        };
        let mut source = Box::new(ReadSource {
            reader,
            error: None,
        });
        let data: *mut ReadSource = &mut *source;
        // SAFETY: the source is boxed (its address stays put) and owned by the `Libyaml`, whose
        // Drop deletes the parser before the source is dropped.
        unsafe {
            unsafe_libyaml::yaml_parser_set_input(&mut *parser, read_handler, data.cast());
        }
        Libyaml {
            parser,
            source,
            started: 0,
            documents_before,
            lines_before,
            null_when_empty: true,
            in_document: false,
            start_line: 0,
            finished: false,
        }
    }

    fn error(&self, message: String) -> YamlError {
        let started = self.documents_before + self.started;
        YamlError {
            document: if self.in_document {
                started
            } else {
                started + 1
            },
            message,
        }
    }

    /// libyaml's own description of a syntax error, with its position.
    fn parser_error(&self) -> String {
        let parser = &*self.parser;
        let text = |pointer: *const std::ffi::c_char| {
            // SAFETY: libyaml's problem and context are null or static C strings.
            (!pointer.is_null()).then(|| unsafe { CStr::from_ptr(pointer) }.to_string_lossy())
        };
        let at = |mark: unsafe_libyaml::yaml_mark_t| {
            let line = self.lines_before as u64 + mark.line + 1;
            format!("at line {line} column {}", mark.column + 1)
        };
        if let Some(err) = &self.source.error {
            return format!("reading failed: {err}");
        }
        let mut message = match text(parser.problem) {
            Some(problem) => format!("{problem} {}", at(parser.problem_mark)),
            None => "unknown libyaml error".to_string(),
        };
        if let Some(context) = text(parser.context) {
            message.push_str(&format!(", {context} {}", at(parser.context_mark)));
        }
        message
    }

    fn next_document(&mut self) -> Option<Result<Value, YamlError>> {
        let mut builder = Builder::default();
        loop {
            let mut event = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
            // SAFETY: the parser was initialised in `new`; parse fills the event on success.
            let parsed =
                unsafe { unsafe_libyaml::yaml_parser_parse(&mut *self.parser, event.as_mut_ptr()) };
            if !parsed.ok {
                self.finished = true;
                return Some(Err(self.error(self.parser_error())));
            }
            // SAFETY: parsed successfully, so the event is initialised; it is deleted below.
            let mut event = unsafe { event.assume_init() };
            let outcome = self.event(&mut builder, &event);
            // SAFETY: an event yaml_parser_parse filled, deleted exactly once.
            unsafe { unsafe_libyaml::yaml_event_delete(&mut event) };
            match outcome {
                Ok(Step::More) => {}
                Ok(Step::Document(value)) => return Some(Ok(value)),
                Ok(Step::End) => {
                    self.finished = true;
                    // An empty stream reads as one empty document, as with `serde_yaml`.
                    let empty = self.documents_before + self.started == 0;
                    return (empty && self.null_when_empty).then_some(Ok(Value::Null));
                }
                Err(message) => {
                    self.finished = true;
                    return Some(Err(self.error(message)));
                }
            }
        }
    }

    fn event(
        &mut self,
        builder: &mut Builder,
        event: &unsafe_libyaml::yaml_event_t,
    ) -> Result<Step, String> {
        // SAFETY (each arm): the union field read is the one libyaml fills for that event
        // type; its strings are valid NUL-terminated or (scalar values) `length` bytes long,
        // and live until the event is deleted, after this returns.
        let node = matches!(
            event.type_,
            unsafe_libyaml::YAML_SCALAR_EVENT
                | unsafe_libyaml::YAML_SEQUENCE_START_EVENT
                | unsafe_libyaml::YAML_MAPPING_START_EVENT
                | unsafe_libyaml::YAML_ALIAS_EVENT
        );
        if node && builder.stack.is_empty() && builder.root.is_none() {
            self.start_line = self.lines_before + event.start_mark.line as usize + 1;
        }
        match event.type_ {
            // After the stream's end libyaml produces no more events.
            unsafe_libyaml::YAML_STREAM_END_EVENT | unsafe_libyaml::YAML_NO_EVENT => Ok(Step::End),
            unsafe_libyaml::YAML_DOCUMENT_START_EVENT => {
                self.started += 1;
                self.in_document = true;
                Ok(Step::More)
            }
            unsafe_libyaml::YAML_DOCUMENT_END_EVENT => {
                self.in_document = false;
                Ok(Step::Document(builder.root.take().unwrap_or(Value::Null)))
            }
            unsafe_libyaml::YAML_SCALAR_EVENT => {
                let scalar = unsafe { event.data.scalar };
                let bytes: &[u8] = match scalar.length {
                    0 => &[],
                    length => unsafe { std::slice::from_raw_parts(scalar.value, length as usize) },
                };
                let text =
                    std::str::from_utf8(bytes).map_err(|_| "a scalar is not UTF-8".to_string())?;
                let anchor = unsafe { c_text(scalar.anchor) };
                let tag = unsafe { c_text(scalar.tag) };
                let plain = scalar.style == unsafe_libyaml::YAML_PLAIN_SCALAR_STYLE;
                if builder.expects_key() {
                    let key = match (plain, tag.as_deref()) {
                        (true, None) => resolve_key(text)?,
                        _ => text.to_string(),
                    };
                    return builder.key(key, anchor).map(|()| Step::More);
                }
                let value = resolve(text, tag.as_deref(), plain)?;
                builder.node(value, 1, anchor).map(|()| Step::More)
            }
            unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
                let start = unsafe { event.data.sequence_start };
                let (anchor, tag) = unsafe { (c_text(start.anchor), c_text(start.tag)) };
                builder.open(Collection::Sequence(Vec::new()), anchor, tag.as_deref())?;
                Ok(Step::More)
            }
            unsafe_libyaml::YAML_MAPPING_START_EVENT => {
                let start = unsafe { event.data.mapping_start };
                let (anchor, tag) = unsafe { (c_text(start.anchor), c_text(start.tag)) };
                builder.open(
                    Collection::Mapping(Map::new(), None),
                    anchor,
                    tag.as_deref(),
                )?;
                Ok(Step::More)
            }
            unsafe_libyaml::YAML_SEQUENCE_END_EVENT | unsafe_libyaml::YAML_MAPPING_END_EVENT => {
                builder.close()?;
                Ok(Step::More)
            }
            unsafe_libyaml::YAML_ALIAS_EVENT => {
                let name = unsafe { c_text(event.data.alias.anchor) }.unwrap_or_default();
                builder.alias(&name)?;
                Ok(Step::More)
            }
            _ => Ok(Step::More),
        }
    }
}

impl Iterator for Documents<'_> {
    type Item = Result<Value, YamlError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let fast = match &mut self.reader {
                Reading::Libyaml(libyaml) => return libyaml.next(),
                Reading::Fast(fast) => fast,
                Reading::HandingOver => return None,
            };
            match fast.read() {
                FastRead::Document(value) => return Some(Ok(value)),
                FastRead::Nothing => {}
                FastRead::Failed(error) => return Some(Err(error)),
                FastRead::End => return None,
                FastRead::Unsupported => {
                    if let Reading::Fast(fast) =
                        std::mem::replace(&mut self.reader, Reading::HandingOver)
                    {
                        self.reader = Reading::Libyaml(fast.into_libyaml());
                    }
                }
            }
        }
    }
}

impl Iterator for Libyaml<'_> {
    type Item = Result<Value, YamlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        self.next_document()
    }
}

impl Drop for Libyaml<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, deleted once.
        unsafe { unsafe_libyaml::yaml_parser_delete(&mut *self.parser) };
    }
}

/// A NUL-terminated string of libyaml (anchor, tag), if any.
///
/// # Safety
/// `pointer` is null or a valid NUL-terminated string.
unsafe fn c_text(pointer: *const u8) -> Option<String> {
    (!pointer.is_null()).then(|| {
        // SAFETY: the caller's contract.
        let text = unsafe { CStr::from_ptr(pointer.cast()) };
        text.to_string_lossy().into_owned()
    })
}

enum Step {
    More,
    Document(Value),
    End,
}

enum Collection {
    Sequence(Vec<Value>),
    /// The mapping and the key whose value comes next.
    Mapping(Map<String, Value>, Option<String>),
}

struct Open {
    collection: Collection,
    anchor: Option<String>,
    /// Nodes in this collection, aliases expanded, itself included.
    nodes: usize,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Value>,
    anchors: Vec<(String, Value, usize)>,
    alias_nodes: usize,
}

impl Builder {
    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Open {
                collection: Collection::Mapping(_, None),
                ..
            })
        )
    }

    fn key(&mut self, key: String, anchor: Option<String>) -> Result<(), String> {
        if let Some(anchor) = anchor {
            self.anchors.push((anchor, Value::String(key.clone()), 1));
        }
        if let Some(Open {
            collection: Collection::Mapping(_, slot),
            nodes,
            ..
        }) = self.stack.last_mut()
        {
            *slot = Some(key);
            *nodes += 1;
        }
        Ok(())
    }

    fn open(
        &mut self,
        collection: Collection,
        anchor: Option<String>,
        tag: Option<&str>,
    ) -> Result<(), String> {
        if self.expects_key() {
            return Err("a mapping key is a sequence or a mapping, not a string".to_string());
        }
        if let Some(tag) = tag.filter(|t| t.starts_with('!')) {
            return Err(format!("unsupported YAML tag `{tag}` on a collection"));
        }
        if self.stack.len() >= DEPTH_LIMIT {
            return Err("recursion limit exceeded".to_string());
        }
        self.stack.push(Open {
            collection,
            anchor,
            nodes: 1,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        let Some(open) = self.stack.pop() else {
            return Ok(());
        };
        let value = match open.collection {
            Collection::Sequence(items) => Value::Array(items),
            Collection::Mapping(map, _) => Value::Object(map),
        };
        self.node(value, open.nodes, open.anchor)
    }

    fn alias(&mut self, name: &str) -> Result<(), String> {
        let Some((_, value, nodes)) = self.anchors.iter().rev().find(|(a, ..)| a == name) else {
            return Err(format!("unknown anchor `{name}`"));
        };
        let (value, nodes) = (value.clone(), *nodes);
        self.alias_nodes += nodes;
        if self.alias_nodes > ALIAS_NODE_LIMIT {
            return Err(format!(
                "aliases expand to more than {ALIAS_NODE_LIMIT} nodes"
            ));
        }
        if self.expects_key() {
            let key = match value {
                Value::String(text) => text,
                Value::Array(_) | Value::Object(_) => {
                    return Err("a mapping key is a sequence or a mapping, not a string".to_string())
                }
                scalar => scalar.to_string(),
            };
            return self.key(key, None);
        }
        self.node(value, nodes, None)
    }

    /// A complete node: recorded under its anchor, then added to the open collection.
    fn node(&mut self, value: Value, nodes: usize, anchor: Option<String>) -> Result<(), String> {
        if let Some(anchor) = anchor {
            self.anchors.push((anchor, value.clone(), nodes));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(open) => {
                open.nodes += nodes;
                match &mut open.collection {
                    Collection::Sequence(items) => items.push(value),
                    Collection::Mapping(map, key) => {
                        // A later duplicate key wins, as with `serde_yaml` into a `Value`.
                        map.insert(key.take().unwrap_or_default(), value);
                    }
                }
            }
        }
        Ok(())
    }
}

const TAG_BOOL: &str = "tag:yaml.org,2002:bool";
const TAG_INT: &str = "tag:yaml.org,2002:int";
const TAG_FLOAT: &str = "tag:yaml.org,2002:float";
const TAG_NULL: &str = "tag:yaml.org,2002:null";

/// One scalar as kubectl resolves it (sigs.k8s.io/yaml over go-yaml v2: YAML 1.1's booleans
/// `yes`/`on`/`y`…, octal `0755`, `_` in numbers) into a `Value`.
fn resolve(text: &str, tag: Option<&str>, plain: bool) -> Result<Value, String> {
    match tag {
        Some(tag) if tag.starts_with('!') => Err(format!("unsupported YAML tag `{tag}`")),
        Some(TAG_BOOL) => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| "a !!bool scalar is not a boolean".to_string()),
        Some(TAG_INT) => match number(text) {
            Some(Number::Int(int)) => Ok(Value::Number(int.into())),
            Some(Number::Unsigned(int)) => Ok(Value::Number(int.into())),
            _ => Err("a !!int scalar is not an integer".to_string()),
        },
        Some(TAG_FLOAT) => match number(text) {
            Some(Number::Int(int)) => float(int as f64),
            Some(Number::Unsigned(int)) => float(int as f64),
            Some(Number::Float(number)) => float(number),
            None => Err("a !!float scalar is not a number".to_string()),
        },
        Some(TAG_NULL) => parse_null(text)
            .then_some(Value::Null)
            .ok_or_else(|| "a !!null scalar is not null".to_string()),
        Some(_) => Ok(Value::String(text.to_string())),
        None if plain => untagged(text),
        None => Ok(Value::String(text.to_string())),
    }
}

fn untagged(text: &str) -> Result<Value, String> {
    if text.is_empty() || parse_null(text) {
        return Ok(Value::Null);
    }
    if let Some(boolean) = parse_bool(text) {
        return Ok(Value::Bool(boolean));
    }
    match number(text) {
        Some(Number::Int(int)) => Ok(Value::Number(int.into())),
        Some(Number::Unsigned(int)) => Ok(Value::Number(int.into())),
        Some(Number::Float(number)) => float(number),
        None => Ok(Value::String(text.to_string())),
    }
}

/// A plain mapping key as kubectl makes it a JSON key: a key that resolves to a boolean or a
/// number is written as one (`on:` becomes `"true"`, `0755:` becomes `"493"`, a float as Go's
/// `%g` of a float32); a null key or an integer beyond int64 is refused, as kubectl refuses it.
fn resolve_key(text: &str) -> Result<String, String> {
    if text.is_empty() || parse_null(text) {
        return Err("a mapping key is null, which kubectl refuses".to_string());
    }
    if let Some(boolean) = parse_bool(text) {
        return Ok(boolean.to_string());
    }
    match number(text) {
        Some(Number::Int(int)) => Ok(int.to_string()),
        Some(Number::Unsigned(_)) => {
            Err("a mapping key is an integer beyond int64, which kubectl refuses".to_string())
        }
        Some(Number::Float(number)) => Ok(go_float32_key(number)),
        None => Ok(text.to_string()),
    }
}

enum Number {
    Int(i64),
    /// Above `i64::MAX`.
    Unsigned(u64),
    /// Possibly not finite.
    Float(f64),
}

/// go-yaml v2's numbers: `.inf`/`.nan` by name; after a digit or a sign, `_` removed, Go's
/// `ParseInt(s, 0, 64)` (`0x`, `0o`, `0b` prefixes, a leading `0` for octal), then
/// `ParseUint`, then a float of the form `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`;
/// after a dot, Go's `ParseFloat` (`.5`).
fn number(text: &str) -> Option<Number> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Number::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Number::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Number::Float(f64::NAN)),
        _ => {}
    }
    if text.starts_with('.') {
        return yaml_style_float(text)
            .then(|| text.parse::<f64>().ok())
            .flatten()
            .filter(|f| f.is_finite())
            .map(Number::Float);
    }
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-')) {
        return None;
    }
    // Most numbers of a manifest (ports, replicas) have no `_`: no copy then.
    let plain = match text.contains('_') {
        true => std::borrow::Cow::Owned(text.replace('_', "")),
        false => std::borrow::Cow::Borrowed(text),
    };
    let (negative, unsigned) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, &*plain),
    };
    if let Some(magnitude) = go_unsigned(unsigned) {
        if negative {
            if magnitude <= i64::MAX as u64 + 1 {
                return Some(Number::Int((magnitude as i64).wrapping_neg()));
            }
        } else if let Ok(int) = i64::try_from(magnitude) {
            return Some(Number::Int(int));
        } else if !plain.starts_with('+') {
            // Go's ParseUint takes no sign.
            return Some(Number::Unsigned(magnitude));
        }
    }
    if yaml_style_float(&plain) {
        // Go's ParseFloat fails on overflow, and the scalar stays a string.
        return plain
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Number::Float);
    }
    None
}

/// Go's unsigned `ParseUint(s, 0, 64)` without a sign: `0x`/`0o`/`0b` prefixes (upper case
/// too), a leading `0` for octal, digits only.
fn go_unsigned(text: &str) -> Option<u64> {
    let lower = text.get(..2).map(str::to_ascii_lowercase);
    let (digits, radix) = match lower.as_deref() {
        Some("0x") => (&text[2..], 16),
        Some("0o") => (&text[2..], 8),
        Some("0b") => (&text[2..], 2),
        _ if text.len() > 1 && text.starts_with('0') => (&text[1..], 8),
        _ => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// A float as kubectl writes it in JSON: an integral one as an integer (Go's encoder writes
/// `1.0` as `1`, which integer fields take); a non-finite one has no JSON form, and kubectl
/// refuses the document.
fn float(number: f64) -> Result<Value, String> {
    if !number.is_finite() {
        return Err("a .inf or .nan value has no JSON form, and kubectl refuses it".to_string());
    }
    if number.fract() == 0.0 && number.abs() < 9_007_199_254_740_992.0 {
        return Ok(Value::Number((number as i64).into()));
    }
    Ok(serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number))
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)` (with sigs.k8s.io/yaml's names for the
/// non-finite): the shortest float32 digits, in exponent form below 1e-4 and from 1e6 on.
fn go_float32_key(number: f64) -> String {
    if number.is_nan() {
        return ".nan".to_string();
    }
    if number.is_infinite() {
        return if number > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    let single = number as f32;
    // Rust's `{:e}` is the shortest round-trip form: `d.ddde±x`.
    let scientific = format!("{single:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs());
    }
    format!("{sign}{}", single.abs())
}

fn parse_null(text: &str) -> bool {
    matches!(text, "null" | "Null" | "NULL" | "~")
}

/// YAML 1.1's booleans, as go-yaml v2 resolves them.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Some(false)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn ours(text: &str) -> Result<Vec<Value>, YamlError> {
        Documents::new(text).collect()
    }

    fn serde_yaml_values(text: &str) -> Result<Vec<Value>, String> {
        serde_yaml::Deserializer::from_str(text)
            .map(|document| Value::deserialize(document).map_err(|e| e.to_string()))
            .collect()
    }

    /// Where YAML 1.1 and 1.2 agree, as `serde_yaml` (1.2) reads them; where they differ,
    /// `resolves_like_kubectl` holds us to kubectl's own reading.
    #[test]
    fn resolves_like_serde_yaml() {
        let scalars = [
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "true",
            "True",
            "FALSE",
            "0",
            "1",
            "-1",
            "0.5",
            "-1.5e-3",
            "0x1F",
            "12:30",
            "2026-11-30",
            "a b",
            "'quoted'",
            "\"7\"",
            "\"true\"",
            "'yes'",
            "!!str 7",
            "!!str yes",
            "!!int \"7\"",
            "!!bool true",
            "!!null ~",
            "|\n  block\n",
            ">\n  folded\n  text\n",
            "1Gi",
            "500m",
            "\"\"",
            "''",
            "inf",
            "nan",
            "Infinity",
            "e5",
            "x1",
        ];
        for scalar in scalars {
            let text = if scalar.starts_with(['|', '>']) {
                format!("key: {scalar}")
            } else {
                format!("key: {scalar}\nlist: [{scalar}]\n")
            };
            let theirs = serde_yaml_values(&text).expect("every case is valid YAML");
            assert_eq!(ours(&text).ok(), Some(theirs), "resolving {scalar:?}");
        }
        let documents =
            "---\na: &x {b: [1, 2]}\nc: *x\n1: one\ntrue: x\n---\n---\n- a\n- {x: z}\n...\n";
        assert_eq!(ours(documents).ok(), serde_yaml_values(documents).ok());
        assert!(ours(documents).is_ok());
    }

    /// kubectl's own reading of every plain scalar of fixtures/validate/yaml11/scalars.yaml
    /// (as values, in flow sequences and as keys), recorded with `kubectl annotate --local -o
    /// json` (its README): YAML 1.1 booleans, octal, `_` in numbers, keys made strings.
    #[test]
    fn resolves_like_kubectl() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/validate/yaml11");
        let text = std::fs::read_to_string(dir.join("scalars.yaml")).unwrap();
        let recorded = std::fs::read_to_string(dir.join("scalars.kubectl.json")).unwrap();
        let mut theirs: Value = serde_json::from_str(&recorded).unwrap();
        // The annotation that `kubectl annotate` needed to print the object.
        theirs["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        /// Numbers compare as kubectl holds them (int64, else float64).
        fn same(a: &Value, b: &Value) -> bool {
            match (a, b) {
                (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
                (Value::Array(x), Value::Array(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
                }
                (Value::Object(x), Value::Object(y)) => {
                    x.len() == y.len()
                        && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
                }
                _ => a == b,
            }
        }
        let fast = ours(&text).unwrap().remove(0);
        let slow = libyaml(&text).unwrap().remove(0);
        for (section, expected) in theirs.as_object().unwrap() {
            for (reading, ours) in [("fast", &fast), ("libyaml", &slow)] {
                assert!(
                    same(&ours[section], expected),
                    "{section} ({reading}): ours {} kubectl {expected}",
                    ours[section]
                );
            }
        }
        assert_eq!(
            fast.as_object().unwrap().len(),
            theirs.as_object().unwrap().len()
        );
    }

    #[test]
    fn errors_name_the_document() {
        let error = ours("a: 1\n---\nb: [1\n").unwrap_err();
        assert_eq!(error.document, 2);
        assert!(error.message.contains("line 4"), "{}", error.message);
        assert!(ours("a: *missing\n")
            .unwrap_err()
            .message
            .contains("unknown anchor"));
        assert!(ours("? [a]\n: b\n")
            .unwrap_err()
            .message
            .contains("mapping key"));
        assert!(ours("a: !custom b\n")
            .unwrap_err()
            .message
            .contains("unsupported YAML tag"));
        assert!(ours("a: .inf\n")
            .unwrap_err()
            .message
            .contains("no JSON form"));
        assert!(ours("~: a\n").unwrap_err().message.contains("key is null"));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(ours(&deep).unwrap_err().message.contains("recursion limit"));
    }

    #[test]
    fn a_billion_laughs_stops_at_the_alias_limit() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        let error = ours(&text).unwrap_err();
        assert!(
            error.message.contains("aliases expand"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_reader_reads_what_the_text_holds() {
        // Far beyond libyaml's 16 KB reads, so that documents span chunks.
        let text = "a: 1\n---\nb: [x, 'y']\nc: {d: 0755}\n".repeat(4000);
        let from_reader: Result<Vec<Value>, _> = Documents::from_reader(text.as_bytes()).collect();
        assert_eq!(from_reader.unwrap(), ours(&text).unwrap());
    }

    #[test]
    fn a_failing_reader_is_named() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("the disk went away"))
            }
        }
        let error = Documents::from_reader(Failing).next().unwrap().unwrap_err();
        assert_eq!(error.message, "reading failed: the disk went away");
    }

    fn libyaml(text: &str) -> Result<Vec<Value>, YamlError> {
        Documents::libyaml(text.as_bytes()).collect()
    }

    /// Every YAML file of this repository (fixtures, overlays, suites), less Helm charts'
    /// templates (Go templates, YAML only once rendered).
    /// Every YAML file of the repository but chart templates; with `ours_only`, not the public
    /// charts of the precision corpus either (third-party files, not written in our style).
    fn repository_yaml_of(ours_only: bool) -> Vec<String> {
        fn walk(dir: &std::path::Path, ours_only: bool, out: &mut Vec<String>) {
            let chart = dir.join("Chart.yaml").is_file();
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy();
                let templates = chart && name == "templates";
                let theirs = ours_only && path.ends_with("fixtures/validate/corpus");
                if path.is_dir() && !templates && !theirs && !matches!(&*name, "target" | ".git") {
                    walk(&path, ours_only, out);
                } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                    out.push(std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut out = Vec::new();
        walk(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
            ours_only,
            &mut out,
        );
        out
    }

    fn repository_yaml() -> Vec<String> {
        repository_yaml_of(false)
    }

    /// A manifest in the bench bundle's style: flow mappings in block sequences.
    const MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: c-0, namespace: bench, labels: {app: c-0}}
spec:
  template:
    metadata: {labels: {app: c-0}, annotations: {prometheus.io/scrape: "true"}}
    spec:
      containers:
        - name: camunda
          image: camunda/camunda-bpm-platform:7.24.0
          ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9404}]
          env:
            - {name: DB_URL, value: "jdbc:postgresql://db:5432/camunda"}
            - name: DB_PASSWORD
              valueFrom: {secretKeyRef: {name: camunda-db, key: password}}
          resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 1536Mi}}
          args: ["--spring.profiles.active=prod", -Dx=1, '']
"#;

    /// Cases at the edges of the fast reader's subset: each is read by libyaml (inside the
    /// subset: by both, to the same value; outside: by libyaml alone).
    const EDGES: &[&str] = &[
        "a: 1\nb:\n- x\n- y\nc: {d: [1, 2], e: 'f''g'}\n",
        "- a: 1\n  b: 2\n- - x\n  - y\n-\n  c: d\n- \n",
        "a:\n  b:\n    c: \"x\\u00e9\\n\"\n  d: e # comment\n# end\n",
        "a: b\n  c\n",
        "a: 'b\n  c'\n",
        "a: |\n  text\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: b: c\n",
        "a:\tb\n",
        "a: 1\r\nb: 2\r\n",
        "- [a, b,]\n- {a, b: c}\n- {a:1}\n- [a: b]\n",
        "a: {b: c\n  d: e}\n",
        "  a: 1\n b: 2\n",
        "a:\n    b: 1\n  c: 2\n",
        "--- x\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n...\n---\nb: 2\n",
        "\u{feff}a: 1\n",
        "a: 1\n---\nb: [1\n---\nc: 3\n",
        "a: 1\n---\n- x\nb: 2\n",
        "? a\n: b\n",
        "\"a\": 1\n'b c': 2\n\"d\":3\n",
        "a: -1\nb: -c\nc: - d\n",
        "a: 0x1F\nb: 007\nc: 1e3\nd: .inf\ne: ~\nf:\ng: 99999999999999999999999\n",
        "a: x #c\nb: x#c\nc: 'x' #c\nd: 'x'#c\n",
        "a: b\u{85}c\n",
        "k: v\nk: w\n",
        "- a\n  - b\n",
        "a: |\n  x\n---\nb: 1\n",
        "a: |+\n  x\n\n\n---\nb: 1\n",
        "a: \"x\n---\nb: 1\n",
        "a: [1,\n---\nb: 2\n",
        "# c\ta\n---\nb: >-\n  x\n  y\n---\n- z\n",
        "a: &x 1\n---\nb: *x\n",
        MANIFEST,
    ];

    #[test]
    fn the_fast_reader_agrees_with_libyaml() {
        let mut corpus = repository_yaml();
        assert!(corpus.len() > 50, "found only {} YAML files", corpus.len());
        corpus.extend(EDGES.iter().map(|e| e.to_string()));
        // Block and flow nesting that only together pass the depth limit.
        let mut deep = String::new();
        for level in 0..70 {
            deep.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        let flow = format!("{}{}", "[".repeat(70), "]".repeat(70));
        deep.push_str(&format!("{}k: {flow}\n", " ".repeat(70)));
        assert!(ours(&deep).unwrap_err().message.contains("recursion limit"));
        corpus.push(deep);
        for text in &corpus {
            assert_eq!(ours(text), libyaml(text), "reading {text:?}");
        }
        // Mutations of every file's first kilobytes: what the fast reader accepts it must read
        // as libyaml does, errors included (their document and line).
        const ALPHABET: &[&str] = &[
            " ", ":", "-", "#", "'", "\"", "{", "}", "[", "]", ",", "\n", "a", "1", "&", "*", "!",
            "|", ">", "?", "%", ".", "\\", "\u{e9}", "\t", "---\n", "- ", ": ", "  ",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let mut mutated = 0;
        for round in 0..20_000 {
            let source = &corpus[round % corpus.len()];
            let end = source
                .char_indices()
                .nth(1500)
                .map_or(source.len(), |(i, _)| i);
            let mut text = source[..end].to_string();
            for _ in 0..1 + random(3) {
                let boundaries: Vec<usize> = (0..=text.len())
                    .filter(|&i| text.is_char_boundary(i))
                    .collect();
                let at = boundaries[random(boundaries.len())];
                let piece = ALPHABET[random(ALPHABET.len())];
                match random(3) {
                    0 => text.insert_str(at, piece),
                    1 => {
                        let next = boundaries.iter().find(|&&b| b > at).copied();
                        if let Some(next) = next {
                            text.replace_range(at..next, piece);
                        }
                    }
                    _ => {
                        let next = boundaries.iter().find(|&&b| b > at).copied();
                        if let Some(next) = next {
                            text.replace_range(at..next, "");
                        }
                    }
                }
            }
            assert_eq!(ours(&text), libyaml(&text), "reading {text:?}");
            mutated += 1;
        }
        assert_eq!(mutated, 20_000);
    }

    #[test]
    fn the_fast_reader_reads_manifests_itself() {
        let mut read = 0;
        for text in repository_yaml_of(true) {
            // The YAML 1.1 fixture is at the edges on purpose.
            if text.starts_with("# Plain scalars as kubectl reads them") {
                continue;
            }
            for document in text.split("\n---\n") {
                // Block scalars (kustomize patches, files in ConfigMaps) are libyaml's.
                if document.contains(": |") || document.contains(": >") {
                    continue;
                }
                assert!(
                    fast::document(document, false).is_ok(),
                    "left to libyaml: {document}"
                );
                read += 1;
            }
        }
        assert!(read > 50, "only {read} documents without block scalars");
        assert!(fast::document(MANIFEST, false).is_ok_and(|v| v.is_some()));
    }

    #[test]
    fn the_fast_reader_goes_on_after_a_document_it_leaves() {
        let text = format!("data:\n  config: |\n    a: 1\n---\n{MANIFEST}");
        let mut documents = Documents::new(&text);
        assert!(documents.next().is_some_and(|d| d.is_ok()));
        assert!(matches!(documents.reader, Reading::Fast(_)));
        assert_eq!(
            documents.collect::<Vec<_>>(),
            libyaml(&text).unwrap()[1..]
                .iter()
                .cloned()
                .map(Ok)
                .collect::<Vec<_>>()
        );
        // A directive concerns the next document: the rest of the stream is libyaml's.
        let mut documents = Documents::new("a: |\n  x\n...\n%YAML 1.2\n---\nb: 1\n");
        assert!(documents.next().is_some_and(|d| d.is_ok()));
        assert!(matches!(documents.reader, Reading::Libyaml(_)));
    }

    #[test]
    fn each_document_says_the_line_it_starts_at() {
        fn lines(text: &str) -> Vec<usize> {
            let mut documents = Documents::new(text);
            let mut lines = Vec::new();
            while let Some(document) = documents.next() {
                document.unwrap();
                lines.push(documents.line());
            }
            lines
        }
        // Fast reader, a document libyaml reads alone (block scalar), leading comments.
        let text = "a: 1\n---\n# c\n\nb: 2\n---\nc: |\n  x\n---\n  d: 1\n";
        assert_eq!(lines(text), [1, 5, 7, 10]);
        // From a directive on, libyaml reads the rest of the stream.
        let text = "a: 1\n...\n%YAML 1.2\n---\n\nb: [1]\n---\nc: 2\n";
        assert_eq!(lines(text), [1, 6, 8]);
    }

    #[test]
    fn empty_streams_and_documents_read_as_null() {
        for text in ["", "---\n", "---\n---\n", "# only a comment\n"] {
            assert_eq!(ours(text).ok(), serde_yaml_values(text).ok(), "{text:?}");
        }
    }
}
