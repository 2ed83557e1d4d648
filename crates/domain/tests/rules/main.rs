//! The order-to-cash rules from the outside: the contract's examples, the transform's rules
//! one by one, and the money invariants as properties — one test binary, one module each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_arithmetic)] // test code

mod contract_examples;
mod invariants;
mod transform_rules;
