//! `ferry_fuzzing::centra_answers` under libFuzzer (see that function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzzing::centra_answers(data));
