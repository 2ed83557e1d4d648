//! A live schema as SDL: Centra's answer to the standard introspection query (June 2018
//! edition, which every GraphQL server answers) written out as type definitions, so the
//! same validator that checks Ferry's operations against the documented schema checks them
//! against the instance a brand runs.

use std::fmt::Write as _;

use serde::Deserialize;

use super::SchemaError;

/// The introspection query Ferry sends.
pub const QUERY: &str = include_str!("../../graphql/introspection.graphql");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(rename = "__schema")]
    schema: SchemaInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaInfo {
    query_type: Named,
    #[serde(default)]
    mutation_type: Option<Named>,
    types: Vec<FullType>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FullType {
    kind: String,
    name: String,
    #[serde(default)]
    fields: Option<Vec<Field>>,
    #[serde(default)]
    input_fields: Option<Vec<InputValue>>,
    #[serde(default)]
    interfaces: Option<Vec<TypeRef>>,
    #[serde(default)]
    enum_values: Option<Vec<Named>>,
    #[serde(default)]
    possible_types: Option<Vec<TypeRef>>,
}

#[derive(Deserialize)]
struct Field {
    name: String,
    #[serde(default)]
    args: Vec<InputValue>,
    #[serde(rename = "type")]
    ty: TypeRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InputValue {
    name: String,
    #[serde(rename = "type")]
    ty: TypeRef,
    #[serde(default)]
    default_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeRef {
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    of_type: Option<Box<TypeRef>>,
}

impl TypeRef {
    /// `[Order!]!` and friends.
    fn render(&self) -> Result<String, SchemaError> {
        let inner = |t: &Option<Box<TypeRef>>| match t {
            Some(t) => t.render(),
            None => Err(SchemaError::new(format!("{} without its type", self.kind))),
        };
        match self.kind.as_str() {
            "NON_NULL" => Ok(format!("{}!", inner(&self.of_type)?)),
            "LIST" => Ok(format!("[{}]", inner(&self.of_type)?)),
            _ => self
                .name
                .clone()
                .ok_or_else(|| SchemaError::new("a named type without a name".into())),
        }
    }
}

/// Types every schema has without declaring them.
const BUILT_IN: &[&str] = &["String", "Int", "Float", "Boolean", "ID"];

/// Writes the `data` of an introspection answer (`{"__schema": …}`) as SDL.
pub fn sdl(data: &[u8]) -> Result<String, SchemaError> {
    let data: Data = serde_json::from_slice(data)
        .map_err(|e| SchemaError::new(format!("not an introspection answer: {e}")))?;
    let mut out = String::new();
    let mut roots = format!("schema {{ query: {}", data.schema.query_type.name);
    if let Some(m) = &data.schema.mutation_type {
        let _ = write!(roots, " mutation: {}", m.name);
    }
    roots.push_str(" }\n");
    out.push_str(&roots);
    for t in &data.schema.types {
        if t.name.starts_with("__") || BUILT_IN.contains(&t.name.as_str()) {
            continue;
        }
        out.push('\n');
        write_type(&mut out, t)?;
    }
    Ok(out)
}

fn write_type(out: &mut String, t: &FullType) -> Result<(), SchemaError> {
    let implements = |out: &mut String| -> Result<(), SchemaError> {
        let names: Vec<String> = t
            .interfaces
            .iter()
            .flatten()
            .map(TypeRef::render)
            .collect::<Result<_, _>>()?;
        if !names.is_empty() {
            let _ = write!(out, " implements {}", names.join(" & "));
        }
        Ok(())
    };
    match t.kind.as_str() {
        "SCALAR" => {
            let _ = writeln!(out, "scalar {}", t.name);
        }
        "OBJECT" | "INTERFACE" => {
            let keyword = if t.kind == "OBJECT" {
                "type"
            } else {
                "interface"
            };
            let _ = write!(out, "{keyword} {}", t.name);
            implements(out)?;
            out.push_str(" {\n");
            for f in t.fields.iter().flatten() {
                let _ = write!(out, "  {}", f.name);
                write_args(out, &f.args)?;
                let _ = writeln!(out, ": {}", f.ty.render()?);
            }
            out.push_str("}\n");
        }
        "UNION" => {
            let members: Vec<String> = t
                .possible_types
                .iter()
                .flatten()
                .map(TypeRef::render)
                .collect::<Result<_, _>>()?;
            let _ = writeln!(out, "union {} = {}", t.name, members.join(" | "));
        }
        "ENUM" => {
            let _ = writeln!(out, "enum {} {{", t.name);
            for v in t.enum_values.iter().flatten() {
                let _ = writeln!(out, "  {}", v.name);
            }
            out.push_str("}\n");
        }
        "INPUT_OBJECT" => {
            let _ = writeln!(out, "input {} {{", t.name);
            for f in t.input_fields.iter().flatten() {
                let _ = write!(out, "  {}: {}", f.name, f.ty.render()?);
                if let Some(d) = &f.default_value {
                    let _ = write!(out, " = {d}");
                }
                out.push('\n');
            }
            out.push_str("}\n");
        }
        other => {
            return Err(SchemaError::new(format!(
                "type {} has an unknown kind {other}",
                t.name
            )));
        }
    }
    Ok(())
}

fn write_args(out: &mut String, args: &[InputValue]) -> Result<(), SchemaError> {
    if args.is_empty() {
        return Ok(());
    }
    out.push('(');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {}", a.name, a.ty.render()?);
        if let Some(d) = &a.default_value {
            let _ = write!(out, " = {d}");
        }
    }
    out.push(')');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckedSchema;

    #[test]
    fn an_introspection_answer_becomes_a_schema_that_validates() {
        let answer = serde_json::json!({ "__schema": {
            "queryType": { "name": "Query" },
            "mutationType": null,
            "types": [
                { "kind": "OBJECT", "name": "Query", "fields": [
                    { "name": "orders", "args": [
                        { "name": "limit", "type": { "kind": "SCALAR", "name": "Int" }, "defaultValue": "20" }
                      ],
                      "type": { "kind": "NON_NULL", "ofType": { "kind": "LIST", "ofType":
                        { "kind": "NON_NULL", "ofType": { "kind": "INTERFACE", "name": "Order" } } } } }
                ], "interfaces": [] },
                { "kind": "INTERFACE", "name": "Order", "fields": [
                    { "name": "number", "args": [], "type": { "kind": "NON_NULL", "ofType": { "kind": "SCALAR", "name": "Int" } } }
                ], "possibleTypes": [ { "kind": "OBJECT", "name": "DirectToConsumerOrder" } ] },
                { "kind": "OBJECT", "name": "DirectToConsumerOrder", "fields": [
                    { "name": "number", "args": [], "type": { "kind": "NON_NULL", "ofType": { "kind": "SCALAR", "name": "Int" } } }
                ], "interfaces": [ { "kind": "INTERFACE", "name": "Order" } ] },
                { "kind": "ENUM", "name": "OrderStatus", "enumValues": [ { "name": "PENDING" } ] },
                { "kind": "SCALAR", "name": "DateTimeTz" },
                { "kind": "SCALAR", "name": "Int" },
                { "kind": "OBJECT", "name": "__Schema", "fields": [] }
            ]
        }});
        let text = sdl(answer.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text.contains("orders(limit: Int = 20): [Order!]!"),
            "{text}"
        );
        assert!(
            text.contains("type DirectToConsumerOrder implements Order {"),
            "{text}"
        );
        let schema = CheckedSchema::parse(&text, "live").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(
            schema
                .differences("q", "{ orders(limit: 1) { number } }")
                .is_empty()
        );
        let refused = schema.differences("q", "{ orders { total } }");
        assert!(
            refused.iter().any(|d| d.message.contains("total")),
            "{refused:?}"
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(sdl(b"{\"nope\": 1}").is_err());
        assert!(sdl(b"[").is_err());
    }
}
