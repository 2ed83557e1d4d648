#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, through cargo fuzz) of what Ferry reads from outside:
# order snapshots through the transform, Centra's webhook bodies, Centra's answers and the ERP connectors' answers (crates/fuzzing).
#
#   scripts/fuzz.sh [seconds per target (600)] [target ...]
#   FUZZ_SEEDS=1 scripts/fuzz.sh ...   # then minimise what was found into fuzz/seeds/
#
# Answers are long (JSON): inputs up to 16 KB from the start (-len_control=0), not grown
# slowly from a few bytes. The targets that go through HTTP run at tens to hundreds of
# inputs a second; give them the machine to themselves.
#
# Builds on the stable toolchain (RUSTC_BOOTSTRAP lets cargo fuzz pass its flags) without a
# sanitizer: the code is safe Rust, and what is looked for is a panic, a hang (-timeout) or
# runaway memory (-rss_limit_mb). Inputs that reach new code stay in fuzz/corpus/<target>;
# the end-to-end test fuzz_replay replays fuzz/seeds/ on every CI run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(snapshot webhook centra_answers erp_answers)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cd "$ROOT/fuzz"
export RUSTC_BOOTSTRAP=1
cargo +stable fuzz build -s none -O
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  echo "== $target: ${SECONDS_PER_TARGET} s"
  cargo +stable fuzz run -s none -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -max_len=16384 -len_control=0 \
    2>&1 | grep -E '^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==|.*panicked|.*deadly signal|.*Timeout|SUMMARY)' || true
  # cargo fuzz leaves a crash's input in artifacts/<target>/: a finding.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "$target: a finding in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  if [[ -n "${FUZZ_SEEDS:-}" ]]; then
    rm -rf "seeds/$target.new" && mkdir -p "seeds/$target.new"
    cargo +stable fuzz cmin -s none -O "$target" "corpus/$target" >/dev/null 2>&1 || true
    cp "corpus/$target"/* "seeds/$target.new/" 2>/dev/null || true
    rm -rf "seeds/$target" && mv "seeds/$target.new" "seeds/$target"
    echo "$target: $(ls "seeds/$target" | wc -l) seeds"
  fi
done
