//! The Centra simulator as Centra documents it, and Ferry's Centra client against it — in
//! one test binary, one module each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test says what broke
#![allow(
    clippy::disallowed_methods,
    reason = "FERRY_UPDATE_SDL asks the fidelity tests to rewrite the checked-in SDL"
)]

mod client;
mod contract_query;
mod fidelity;
