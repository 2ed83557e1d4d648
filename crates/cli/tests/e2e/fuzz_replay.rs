//! The fuzz targets' seeds replayed (the inputs `scripts/fuzz.sh` found that reach new
//! code, kept in `fuzz/seeds/`), plus hostile answers written by hand: each ends in a
//! value or an error, never a panic.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("snapshot", ferry_fuzzing::snapshot),
    ("webhook", ferry_fuzzing::webhook),
    ("centra_answers", ferry_fuzzing::centra_answers),
    ("erp_answers", ferry_fuzzing::erp_answers),
];

/// Answers no honest server sends: empty, truncated, deeply nested, huge, wrongly typed.
fn hostile() -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\x00{".to_vec(),
        b"\x00{\"data\":".to_vec(),
        b"\x00{\"data\":null,\"errors\":[{\"message\":1}]}".to_vec(),
        b"\x00{\"data\":{\"orders\":\"not a list\"}}".to_vec(),
        b"\x00{\"data\":{\"orders\":[{\"number\":\"x\",\"lines\":{}}]}}".to_vec(),
        b"\x00{\"extensions\":{\"complexity\":18446744073709551615}}".to_vec(),
        b"\x00{\"result\":[[[[[]]]]],\"id\":\"x\"}".to_vec(),
        b"\x00{\"sales_orders\":[{\"external_ref\":null}],\"next_cursor\":7}".to_vec(),
        b"t=99999999999999999999,v1=zz\npayload=%7B".to_vec(),
        b"t=-9223372036854775808,v1=\npayload=".to_vec(),
    ];
    let mut nested = vec![0u8];
    nested.extend(std::iter::repeat_n(b'[', 100_000));
    inputs.push(nested);
    let mut huge = b"\x00{\"data\":{\"events\":[".to_vec();
    huge.extend(std::iter::repeat_n(&b"{\"id\":1},"[..], 50_000).flatten());
    huge.extend(b"{}]}}");
    inputs.push(huge);
    inputs
}

#[test]
fn the_seeds_and_hostile_answers_end_in_a_value_or_an_error() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    for (name, target) in TARGETS {
        let mut replayed = 0;
        for entry in std::fs::read_dir(seeds.join(name))
            .into_iter()
            .flatten()
            .flatten()
        {
            let input = std::fs::read(entry.path()).expect("a seed");
            target(&input);
            replayed += 1;
        }
        assert!(replayed > 0, "no seeds for {name} in {}", seeds.display());
        for input in hostile() {
            target(&input);
        }
    }
}
