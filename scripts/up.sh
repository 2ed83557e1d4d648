#!/usr/bin/env bash
# Runs Ferry locally on embedded defaults: installs what is missing, builds, and starts a
# nats-server, PostgreSQL, the Centra and ERP simulators and every service, with sample
# orders flowing. Extra arguments go to `ferry up` (try --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
exec cargo run --release --quiet -p ferry -- up "$@"
