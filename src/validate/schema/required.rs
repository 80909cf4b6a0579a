//! Required and unknown fields of built-in kinds, walked along the JSON schema `k8s-openapi`
//! generates from its own types (its `Deserialize` fills missing required fields with defaults
//! and skips unknown ones). Walking the schema is also much faster than tracking every key
//! through serde wrappers.

use std::sync::OnceLock;

use k8s_openapi::schemars::SchemaGenerator;
use rustc_hash::FxHashMap as HashMap;
use serde_json::{Map, Value};

/// The generated JSON schemas compiled once into a graph of object nodes (`$ref`s resolved,
/// property names hashed with FxHash, cheaper than SipHash on short keys; the keys are our own
/// schemas' names, nothing an attacker picks): the walk then costs a hash lookup per field.
struct Schemas {
    nodes: Vec<Node>,
    roots: HashMap<(&'static str, &'static str), usize>,
}

#[derive(Default)]
struct Node {
    required: Vec<String>,
    /// `None`: not an object with declared properties (any key allowed).
    properties: Option<HashMap<String, usize>>,
    additional: Option<usize>,
    items: Option<usize>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut generator = SchemaGenerator::default();
        let roots: Vec<_> = super::kinds()
            .iter()
            .filter_map(|kind| {
                let schema = kind.schema?;
                Some((
                    (kind.api_version, kind.kind),
                    schema(&mut generator).to_value(),
                ))
            })
            .collect();
        let defs = generator.take_definitions(true);
        let mut compiler = Compiler {
            defs: &defs,
            nodes: Vec::new(),
            by_ref: HashMap::default(),
        };
        let roots = roots
            .iter()
            .map(|(key, schema)| (*key, compiler.compile(schema)))
            .collect();
        Schemas {
            nodes: compiler.nodes,
            roots,
        }
    })
}

struct Compiler<'d> {
    defs: &'d Map<String, Value>,
    nodes: Vec<Node>,
    /// Definitions already compiled (also breaks recursive definitions).
    by_ref: HashMap<String, usize>,
}

impl Compiler<'_> {
    fn compile(&mut self, schema: &Value) -> usize {
        let reference = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next());
        let Some(name) = reference else {
            return self.compile_body(schema);
        };
        if let Some(id) = self.by_ref.get(name) {
            return *id;
        }
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        self.by_ref.insert(name.to_string(), id);
        if let Some(target) = self.defs.get(name) {
            let body = self.body(target);
            self.nodes[id] = body;
        }
        id
    }

    fn compile_body(&mut self, schema: &Value) -> usize {
        let node = self.body(schema);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn body(&mut self, schema: &Value) -> Node {
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .map(|(key, sub)| (key.clone(), self.compile(sub)))
                    .collect()
            });
        let additional = schema
            .get("additionalProperties")
            .filter(|v| v.is_object())
            .map(|sub| self.compile(sub));
        let items = schema.get("items").map(|sub| self.compile(sub));
        Node {
            required,
            properties,
            additional,
            items,
        }
    }
}

/// Appends `missing required field` and `unknown field` problems for `value` of the given kind.
pub fn check(value: &Value, api_version: &'static str, kind: &'static str, out: &mut Vec<String>) {
    let schemas = schemas();
    if let Some(root) = schemas.roots.get(&(api_version, kind)) {
        let mut walker = Walker {
            nodes: &schemas.nodes,
            path: Vec::new(),
            out,
        };
        walker.walk(value, *root);
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Walker<'a, 'o> {
    nodes: &'a [Node],
    /// Built up as the walk descends; only formatted when there is something to report.
    path: Vec<Segment<'a>>,
    out: &'o mut Vec<String>,
}

impl<'a> Walker<'a, '_> {
    fn path_with(&self, last: &str) -> String {
        let mut text = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) => {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(key);
                }
                Segment::Index(index) => text.push_str(&format!("[{index}]")),
            }
        }
        super::join(&text, last)
    }

    fn walk(&mut self, value: &'a Value, node: usize) {
        let nodes = self.nodes;
        let node = &nodes[node];
        match value {
            Value::Object(map) => {
                for field in &node.required {
                    if !map.contains_key(field) {
                        let path = self.path_with(field);
                        self.out.push(format!("missing required field `{path}`"));
                    }
                }
                for (key, child) in map {
                    let child_node = node
                        .properties
                        .as_ref()
                        .and_then(|p| p.get(key))
                        .or(node.additional.as_ref());
                    match child_node {
                        Some(child_node) => {
                            self.path.push(Segment::Key(key));
                            self.walk(child, *child_node);
                            self.path.pop();
                        }
                        // A closed object (declared properties, no additionalProperties).
                        None if node.properties.is_some() => {
                            let path = self.path_with(key);
                            self.out.push(super::unknown_field(&path));
                        }
                        None => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_node) = node.items {
                    for (index, item) in items.iter().enumerate() {
                        self.path.push(Segment::Index(index));
                        self.walk(item, item_node);
                        self.path.pop();
                    }
                }
            }
            _ => {}
        }
    }
}
