//! Any bytes as a webhook body and signature header: verification and parsing never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let header = std::str::from_utf8(&data[..split]).ok();
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = ferry_centra::webhook::verify(b"secret", header, body, 1_700_000_000, 300);
    let _ = ferry_centra::webhook::parse_body(body);
});
