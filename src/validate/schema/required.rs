//! Required and unknown fields of built-in kinds, walked along the JSON schema `k8s-openapi`
//! generates from its own types (its `Deserialize` fills missing required fields with defaults
//! and skips unknown ones). Walking the schema is also much faster than tracking every key
//! through serde wrappers.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::schemars::SchemaGenerator;
use serde_json::{Map, Value};

struct Schemas {
    roots: HashMap<(&'static str, &'static str), Value>,
    defs: Map<String, Value>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut generator = SchemaGenerator::default();
        let mut roots = HashMap::new();
        for kind in super::kinds() {
            if let Some(schema) = kind.schema {
                roots.insert((kind.api_version, kind.kind), schema(&mut generator).to_value());
            }
        }
        Schemas {
            roots,
            defs: generator.take_definitions(true),
        }
    })
}

/// Appends `missing required field` and `unknown field` problems for `value` of the given kind.
pub fn check(value: &Value, api_version: &'static str, kind: &'static str, out: &mut Vec<String>) {
    let schemas = schemas();
    if let Some(root) = schemas.roots.get(&(api_version, kind)) {
        let mut walker = Walker {
            defs: &schemas.defs,
            path: Vec::new(),
            out,
        };
        walker.walk(value, root);
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Walker<'a, 'o> {
    defs: &'a Map<String, Value>,
    /// Built up as the walk descends; only formatted when there is something to report.
    path: Vec<Segment<'a>>,
    out: &'o mut Vec<String>,
}

impl<'a> Walker<'a, '_> {
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        // Bounded: a `$ref` chain in generated schemas is one hop, never a cycle.
        for _ in 0..8 {
            let Some(name) = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
            else {
                break;
            };
            match self.defs.get(name) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

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

    fn walk(&mut self, value: &'a Value, schema: &'a Value) {
        let schema = self.resolve(schema);
        match value {
            Value::Object(map) => {
                if let Some(required) = schema.get("required").and_then(Value::as_array) {
                    for field in required.iter().filter_map(Value::as_str) {
                        if !map.contains_key(field) {
                            let path = self.path_with(field);
                            self.out.push(format!("missing required field `{path}`"));
                        }
                    }
                }
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|v| v.is_object());
                for (key, child) in map {
                    let child_schema = properties.and_then(|p| p.get(key)).or(additional);
                    match child_schema {
                        Some(child_schema) => {
                            self.path.push(Segment::Key(key));
                            self.walk(child, child_schema);
                            self.path.pop();
                        }
                        // A closed object (declared properties, no additionalProperties).
                        None if properties.is_some() => {
                            let path = self.path_with(key);
                            self.out.push(super::unknown_field(&path));
                        }
                        None => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.path.push(Segment::Index(index));
                        self.walk(item, item_schema);
                        self.path.pop();
                    }
                }
            }
            _ => {}
        }
    }
}
