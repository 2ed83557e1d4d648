//! Ferry's GraphQL operations checked against a schema: Centra's documented one in CI
//! (`tests/contracts/centra-documented.graphql`), a live instance's — read by introspection
//! — before going live (`ferry centra check`). GraphQL validation is all-or-nothing: one
//! unknown field and Centra refuses the whole request, so every difference matters.

pub mod introspection;
pub mod live;

use apollo_compiler::{ExecutableDocument, Schema};

/// Centra's Integration API as documented, the parts Ferry uses (with the source of every
/// type).
pub const DOCUMENTED_SCHEMA: &str =
    include_str!("../../../../tests/contracts/centra-documented.graphql");

/// One way an operation does not fit a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The operation's name in [`crate::client::ops::all`].
    pub operation: String,
    pub message: String,
    /// Line and column in the operation's text.
    pub at: Option<(usize, usize)>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "{} (line {line}, column {column}): {}",
                self.operation, self.message
            ),
            None => write!(f, "{}: {}", self.operation, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the schema is not valid GraphQL: {0}")]
pub struct SchemaError(String);

impl SchemaError {
    pub(crate) fn new(reason: String) -> Self {
        SchemaError(reason)
    }
}

/// A schema to check operations against.
pub struct CheckedSchema(apollo_compiler::validation::Valid<Schema>);

impl CheckedSchema {
    /// Parses and validates `sdl` (`name` appears in messages).
    pub fn parse(sdl: &str, name: &str) -> Result<Self, SchemaError> {
        Schema::parse_and_validate(sdl, name)
            .map(CheckedSchema)
            .map_err(|e| SchemaError(e.errors.to_string()))
    }

    /// How `operation` (named `name`) does not fit this schema; empty when it does.
    pub fn differences(&self, name: &str, operation: &str) -> Vec<Difference> {
        match ExecutableDocument::parse_and_validate(&self.0, operation, format!("{name}.graphql"))
        {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors
                .iter()
                .map(|d| Difference {
                    operation: name.to_owned(),
                    message: d.error.to_string(),
                    at: d
                        .line_column_range()
                        .map(|r| (r.start.line, r.start.column)),
                })
                .collect(),
        }
    }

    /// How the operations Ferry sends do not fit this schema; empty when all of them do.
    pub fn check_ferry(&self) -> Vec<Difference> {
        crate::client::ops::all()
            .into_iter()
            .flat_map(|(name, operation)| self.differences(name, &operation))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard issue 23 asked for: every operation Ferry sends is valid against Centra's
    /// schema as documented — not only against our own simulator, which could share a
    /// mistake with the client.
    #[test]
    fn every_operation_validates_against_the_documented_schema() {
        let schema = CheckedSchema::parse(DOCUMENTED_SCHEMA, "centra-documented.graphql")
            .unwrap_or_else(|e| panic!("{e}"));
        let differences = schema.check_ferry();
        assert!(
            differences.is_empty(),
            "operations Centra would refuse:\n{}",
            differences
                .iter()
                .map(Difference::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn a_renamed_field_is_named() {
        let schema = CheckedSchema::parse(
            "type Query { orders: [Order!]! } type Order { number: Int! }",
            "s.graphql",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let found = schema.differences("q", "query Q { orders { number total } }");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("total"), "{}", found[0]);
        assert_eq!(found[0].at, Some((1, 27)));
        assert!(
            schema
                .differences("q", "query Q { orders { number } }")
                .is_empty()
        );
    }
}
