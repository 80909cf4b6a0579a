//! Required fields of built-in kinds, walked along the JSON schema `k8s-openapi` generates from
//! its own types (its `Deserialize` fills missing required fields with defaults instead).

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

/// Appends `missing required field `path`` problems for `value` of the given kind.
pub fn check(value: &Value, api_version: &'static str, kind: &'static str, out: &mut Vec<String>) {
    let schemas = schemas();
    if let Some(root) = schemas.roots.get(&(api_version, kind)) {
        walk(value, root, &schemas.defs, "", out);
    }
}

fn resolve<'a>(mut schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    // Bounded: a `$ref` chain in generated schemas is one hop, never a cycle.
    for _ in 0..8 {
        let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
        else {
            break;
        };
        match defs.get(name) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

fn walk(value: &Value, schema: &Value, defs: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let schema = resolve(schema, defs);
    match value {
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for field in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(field) {
                        out.push(format!(
                            "missing required field `{}`",
                            super::join(path, field)
                        ));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|v| v.is_object());
            for (key, child) in map {
                let child_schema = properties.and_then(|p| p.get(key)).or(additional);
                if let Some(child_schema) = child_schema {
                    walk(child, child_schema, defs, &super::join(path, key), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    walk(item, item_schema, defs, &format!("{path}[{index}]"), out);
                }
            }
        }
        _ => {}
    }
}
