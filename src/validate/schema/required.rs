//! Required and unknown fields of built-in kinds, walked along the JSON schema `k8s-openapi`
//! generates from its own types (its `Deserialize` fills missing required fields with defaults
//! and skips unknown ones). Walking the schema is also much faster than tracking every key
//! through serde wrappers.

use serde_json::Value;

/// One object schema of the table: its required fields, its declared properties (in
/// [`by_length`] order, with the node of each), the node of additional properties and of array items.
pub struct Node {
    pub required: &'static [&'static str],
    /// `None`: not an object with declared properties (any key allowed).
    pub properties: Option<&'static [(&'static str, u32)]>,
    pub additional: Option<u32>,
    pub items: Option<u32>,
}

/// The order of a node's properties: by length first, so that most comparisons of the binary
/// search never read the bytes.
fn by_length(name: &str, key: &str) -> std::cmp::Ordering {
    name.len().cmp(&key.len()).then_with(|| name.cmp(key))
}

/// The generated JSON schemas of the built-in kinds, compiled into a graph of object nodes
/// (`$ref`s resolved) at development time by the test [`table_is_current`]: generating them at
/// run time cost 7 MB of peak memory and 3 ms for every `validate`, before the first object.
#[path = "table.rs"]
mod table;

/// Appends `missing required field` and `unknown field` problems for `value` of the given kind.
pub fn check(value: &Value, api_version: &'static str, kind: &'static str, out: &mut Vec<String>) {
    let root = table::ROOTS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind);
    if let Some((.., root)) = root {
        let mut walker = Walker {
            nodes: table::NODES,
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

    fn walk(&mut self, value: &'a Value, node: u32) {
        let nodes = self.nodes;
        let node = &nodes[node as usize];
        match value {
            Value::Object(map) => {
                for field in node.required {
                    if !map.contains_key(*field) {
                        let path = self.path_with(field);
                        self.out.push(format!("missing required field `{path}`"));
                    }
                }
                for (key, child) in map {
                    let declared = node.properties.and_then(|properties| {
                        let at = properties.binary_search_by(|(name, _)| by_length(name, key));
                        at.ok().map(|at| properties[at].1)
                    });
                    let child_node = declared.or(node.additional);
                    match child_node {
                        Some(child_node) => {
                            self.path.push(Segment::Key(key));
                            self.walk(child, child_node);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use k8s_openapi::schemars::SchemaGenerator;
    use serde_json::{Map, Value};

    /// A node of the table as the test compiles it from `k8s-openapi`'s generated schemas.
    #[derive(Default)]
    struct Compiled {
        required: Vec<String>,
        properties: Option<BTreeMap<String, u32>>,
        additional: Option<u32>,
        items: Option<u32>,
    }

    /// Node 0: a value with nothing to check below it (a scalar, or any object), shared by the
    /// hundreds of inline schemas that are just that.
    const LEAF: u32 = 0;

    impl Compiled {
        fn is_leaf(&self) -> bool {
            self.required.is_empty()
                && self.properties.is_none()
                && self.additional.is_none()
                && self.items.is_none()
        }
    }

    struct Compiler<'d> {
        defs: &'d Map<String, Value>,
        nodes: Vec<Compiled>,
        /// Definitions already compiled (also breaks recursive definitions).
        by_ref: BTreeMap<String, u32>,
    }

    impl Compiler<'_> {
        fn compile(&mut self, schema: &Value) -> u32 {
            let reference = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next());
            let Some(name) = reference else {
                let node = self.body(schema);
                if node.is_leaf() {
                    return LEAF;
                }
                return self.push(node);
            };
            if let Some(id) = self.by_ref.get(name) {
                return *id;
            }
            let id = self.push(Compiled::default());
            self.by_ref.insert(name.to_string(), id);
            if let Some(target) = self.defs.get(name) {
                let body = self.body(target);
                self.nodes[id as usize] = body;
            }
            id
        }

        fn push(&mut self, node: Compiled) -> u32 {
            self.nodes.push(node);
            u32::try_from(self.nodes.len() - 1).expect("fewer than 2^32 schema nodes")
        }

        fn body(&mut self, schema: &Value) -> Compiled {
            let required = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
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
            Compiled {
                required,
                properties,
                additional,
                items,
            }
        }
    }

    /// The source of `table.rs` for the built-in kinds of [`super::super::kinds`].
    fn generate() -> String {
        let mut generator = SchemaGenerator::default();
        let roots: Vec<_> = super::super::kinds()
            .iter()
            .filter_map(|kind| {
                let schema = kind.schema?;
                Some((
                    kind.api_version,
                    kind.kind,
                    schema(&mut generator).to_value(),
                ))
            })
            .collect();
        let defs = generator.take_definitions(true);
        let mut compiler = Compiler {
            defs: &defs,
            nodes: vec![Compiled::default()],
            by_ref: BTreeMap::new(),
        };
        let roots: Vec<_> = roots
            .iter()
            .map(|(api_version, kind, schema)| (api_version, kind, compiler.compile(schema)))
            .collect();
        let mut out = String::from(
            "// @generated by the test `table_is_current` (required.rs) from k8s-openapi's JSON schemas:\n\
             // do not edit; `cargo test table_is_current` rewrites it after a k8s-openapi upgrade.\n\n\
             use super::Node;\n\n#[rustfmt::skip]\npub static ROOTS: &[(&str, &str, u32)] = &[\n",
        );
        for (api_version, kind, root) in roots {
            writeln!(out, "    ({api_version:?}, {kind:?}, {root}),").unwrap();
        }
        out.push_str("];\n\n#[rustfmt::skip]\npub static NODES: &[Node] = &[\n");
        for node in &compiler.nodes {
            let option =
                |value: Option<u32>| value.map_or("None".to_string(), |v| format!("Some({v})"));
            let properties = node.properties.as_ref().map_or("None".to_string(), |p| {
                let mut sorted: Vec<_> = p.iter().collect();
                sorted.sort_by(|(a, _), (b, _)| super::by_length(a, b));
                let pairs: Vec<_> = sorted
                    .iter()
                    .map(|(k, v)| format!("({k:?}, {v})"))
                    .collect();
                format!("Some(&[{}])", pairs.join(", "))
            });
            writeln!(
                out,
                "    Node {{ required: &{:?}, properties: {properties}, additional: {}, items: {} }},",
                node.required,
                option(node.additional),
                option(node.items)
            )
            .unwrap();
        }
        out.push_str("];\n");
        out
    }

    /// rust-analyzer's sourcegen pattern: the table is generated code under version control, and
    /// this test fails (rewriting it) when it no longer matches what `k8s-openapi` generates.
    #[test]
    fn table_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/validate/schema/table.rs");
        let expected = generate();
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != expected {
            std::fs::write(&path, &expected).expect("rewriting the schema table");
            panic!(
                "{} was stale and has been regenerated: review and commit it",
                path.display()
            );
        }
    }
}
