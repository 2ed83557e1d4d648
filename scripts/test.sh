#!/usr/bin/env bash
# Runs every test of the workspace against real components: installs what is missing
# (scripts/setup.sh), lets the test harness start one nats-server, one PostgreSQL and one
# Tryton for the run (on free loopback ports, data under target/ferry-test-infra), and stops them after.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
# Tryton from PyPI and its bootstrapped template, cached (about two minutes the first time).
"$ROOT/scripts/tryton.sh" prepare

INFRA="${CARGO_TARGET_DIR:-$ROOT/target}/ferry-test-infra"
stop_infra() {
  "$ROOT/scripts/tryton.sh" stop "$INFRA/tryton" 2>/dev/null || true
  if [[ -f "$INFRA/pids" ]]; then
    { read -r nats_pid; read -r pg_data; } < "$INFRA/pids" || true
    [[ -n "${nats_pid:-}" ]] && kill "$nats_pid" 2>/dev/null || true
    if [[ -n "${pg_data:-}" && -d "$pg_data" ]]; then
      pg_ctl="$(ls -d /usr/lib/postgresql/*/bin | tail -1)/pg_ctl"
      if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true
      else "$pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true; fi
    fi
    rm -f "$INFRA/pids" "$INFRA/infra.json"
  fi
}
# Servers left by an interrupted earlier run are stopped first, and ours when we are done.
stop_infra
trap stop_infra EXIT

cargo nextest run --workspace --no-fail-fast "$@"
