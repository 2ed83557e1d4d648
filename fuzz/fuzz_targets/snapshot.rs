//! `ferry_fuzzing::snapshot` under libFuzzer (see that function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzzing::snapshot(data));
