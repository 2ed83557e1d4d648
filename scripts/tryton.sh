#!/usr/bin/env bash
# Ferry's Tryton harness: a real Tryton 8.2 ERP on a free loopback port, for tests and demos.
#
#   scripts/tryton.sh prepare       pinned venv from PyPI + a bootstrapped template database
#                                   (cached by the hash of the pins and the set-up inputs, so
#                                   later runs start in seconds)
#   scripts/tryton.sh start DIR     copy the template into DIR, start trytond on a free port,
#                                   wait until a login succeeds, write DIR/env and print it
#   scripts/tryton.sh stop DIR      stop the server started in DIR
#   scripts/tryton.sh run           start in a temporary directory, in the foreground
#
# With FERRY_TRYTON_POSTGRES=postgresql://USER@HOST:PORT/ (a PostgreSQL server, e.g. the one
# `ferry up` or a benchmark runs), `start` puts Tryton's database there instead of SQLite, as
# brands run it: a fresh database restored from a cached dump of the bootstrapped template
# (made once per pins and inputs, by bootstrapping on that server). FERRY_TRYTON_WORKERS=N (N > 1,
# PostgreSQL only) serves it with N worker processes under gunicorn, as production Tryton runs
# behind a multi-process WSGI server: one trytond process uses one core.
#
# Environment: FERRY_TRYTON_CACHE (default ~/.cache/ferry/tryton), PYTHON (python3),
# TRYTON_ADMIN_PASSWORD (ferry-admin), FERRY_TRYTON_QUEUE_WORKER=1 (start: hand queued tasks
# such as processing a confirmed sale to a queue worker, as production set-ups do; none is
# started, so they wait, as when a brand's worker is down).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FERRY_TRYTON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/tryton}"
PYTHON="${PYTHON:-python3}"
DB=ferry
export TRYTON_ADMIN_PASSWORD="${TRYTON_ADMIN_PASSWORD:-ferry-admin}"

# Exact pins (trytond 8.2, resolved 2026-11; see ../shared/reference/tryton/FINDINGS.md).
PINS=(
  trytond==8.2.1 proteus==8.2.0
  trytond-account==8.2.1 trytond-account-invoice==8.2.0
  trytond-account-invoice-stock==8.2.0 trytond-account-product==8.2.0
  trytond-carrier==8.2.0 trytond-company==8.2.0 trytond-country==8.2.0
  trytond-currency==8.2.0 trytond-party==8.2.0 trytond-product==8.2.0
  trytond-product-measurements==8.2.0 trytond-sale==8.2.0
  trytond-sale-amendment==8.2.0 trytond-sale-discount==8.2.0
  trytond-sale-history==8.2.0 trytond-sale-shipment-cost==8.2.0
  trytond-stock==8.2.1 trytond-stock-package==8.2.0
  trytond-stock-package-shipping==8.2.0 trytond-stock-shipment-cost==8.2.0
  trytond-stock-shipment-measurements==8.2.0
  psycopg==3.3.9 psycopg-binary==3.3.9 psycopg-pool==3.3.3 gunicorn==27.0.1
  argon2-cffi==25.1.0 argon2-cffi-bindings==26.2.0 cffi==2.1.1
  defusedxml==0.7.1 Genshi==0.7.12 lxml==6.1.3 MarkupSafe==3.0.4
  polib==1.2.0 puremagic==1.30 pwdlib==0.3.1 pycparser==3.12
  python-dateutil==4.0.0 python-sql==1.8.1 python-stdnum==2.2
  relatorio==1.0.0 simpleeval==1.0.8 tzdata==2026.6 Werkzeug==3.1.9
  typing_extensions==4.16.0
)
INPUTS=("$ROOT/scripts/tryton/bootstrap.py" "$ROOT/scripts/tryton/catalogue.json" "$ROOT"/tests/contracts/examples/*.map.csv)

log() { echo "[tryton] $*" >&2; }

key() { { printf '%s\n' "${PINS[@]}"; cat "${INPUTS[@]}"; } | sha256sum | cut -c1-16; }

VENV="$CACHE/venv-$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"

ensure_venv() {
  # venvs hard-code their path, so it is built in place; the marker says it is complete.
  [[ -f "$VENV/.complete" ]] && return
  log "installing Tryton into $VENV"
  local t0=$SECONDS
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
  touch "$VENV/.complete"
  log "venv ready in $((SECONDS - t0))s"
}

prepare() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/lock"
  flock 9
  ensure_venv
  TEMPLATE="$CACHE/template-$(key)"
  if [[ ! -f "$TEMPLATE/$DB.sqlite" ]]; then
    log "bootstrapping the template database (modules, company, catalogue, stock)"
    local t0=$SECONDS work="$TEMPLATE.tmp.$$"
    rm -rf "$work"; mkdir -p "$work"
    "$VENV/bin/python" "$ROOT/scripts/tryton/bootstrap.py" --db "$DB" --data "$work" \
      --catalogue "$ROOT/scripts/tryton/catalogue.json" \
      --maps "$ROOT/tests/contracts/examples/*.map.csv" > "$work/bootstrap.json"
    mv "$work" "$TEMPLATE"
    log "template ready in $((SECONDS - t0))s: $TEMPLATE"
  fi
  flock -u 9
}

# A dump of the template bootstrapped on PostgreSQL (FERRY_TRYTON_POSTGRES), cached beside
# the SQLite template; made once on the given server.
prepare_pg() {
  local server="$1"
  prepare
  PG_DUMP="$TEMPLATE/$DB.pg.sql"
  exec 9>"$CACHE/lock"
  flock 9
  if [[ ! -f "$PG_DUMP" ]]; then
    log "bootstrapping the template on PostgreSQL (once per pins and inputs)"
    local t0=$SECONDS tpl="ferry_tpl_$$"
    # bootstrap.py creates it (Tryton lists only databases it has initialised).
    psql -q "${server}postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $tpl" >&2
    "$VENV/bin/python" "$ROOT/scripts/tryton/bootstrap.py" --db "$tpl" --uri "$server" \
      --catalogue "$ROOT/scripts/tryton/catalogue.json" \
      --maps "$ROOT/tests/contracts/examples/*.map.csv" > /dev/null
    pg_dump --no-owner --no-privileges -f "$PG_DUMP.tmp" "${server}$tpl"
    psql -q "${server}postgres" -c "DROP DATABASE $tpl" >&2
    mv "$PG_DUMP.tmp" "$PG_DUMP"
    log "PostgreSQL template ready in $((SECONDS - t0))s: $PG_DUMP"
  fi
  flock -u 9
}

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

alive() { [[ -f "$1/pid" ]] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

start() {
  local dir="$1"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  # Concurrent callers (test processes) share one server per directory.
  exec 8>"$dir/start.lock"
  flock 8
  if alive "$dir" && [[ -f "$dir/env" ]]; then cat "$dir/env"; return; fi
  local port; port="$(free_port)"
  local db="$DB" server="${FERRY_TRYTON_POSTGRES:-}"
  if [[ -n "$server" ]]; then
    [[ "$server" == */ ]] || server="$server/"
    prepare_pg "$server"
    # A database of its own on the server, restored from the template's dump.
    db="ferry_t$port"
    psql -q "${server}postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >&2
    psql -q -o /dev/null -v ON_ERROR_STOP=1 -f "$PG_DUMP" "${server}$db" >&2
    cat > "$dir/trytond.conf" <<CONF
[web]
listen = 127.0.0.1:$port
[database]
uri = $server
CONF
  else
    prepare
    # A fresh data directory: a journal left by a server that was killed would be rolled
    # back onto the new copy and corrupt it.
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
    cp "$TEMPLATE/$DB.sqlite" "$dir/data/$DB.sqlite"
    cat > "$dir/trytond.conf" <<CONF
[web]
listen = 127.0.0.1:$port
[database]
uri = sqlite://
path = $dir/data
CONF
  fi
  if [[ "${FERRY_TRYTON_QUEUE_WORKER:-}" == 1 ]]; then
    printf '[queue]\nworker = True\n' >> "$dir/trytond.conf"
  fi
  # The server must not inherit the lock descriptors, or it would hold them for its life.
  local workers="${FERRY_TRYTON_WORKERS:-1}"
  if (( workers > 1 )); then
    [[ -n "$server" ]] || { log "FERRY_TRYTON_WORKERS needs FERRY_TRYTON_POSTGRES (SQLite takes one writer)"; return 1; }
    TRYTOND_CONFIG="$dir/trytond.conf" TRYTOND_DATABASE_NAMES="$db" nohup "$VENV/bin/gunicorn" \
      --workers "$workers" --bind "127.0.0.1:$port" --timeout 300 trytond.application:app \
      > "$dir/trytond.log" 2>&1 8>&- 9>&- &
  else
    nohup "$VENV/bin/trytond" -c "$dir/trytond.conf" -d "$db" > "$dir/trytond.log" 2>&1 8>&- 9>&- &
  fi
  echo $! > "$dir/pid"
  local url="http://127.0.0.1:$port"
  local t0=$SECONDS
  until curl -sf -X POST -H 'Content-Type: application/json' \
      -d "{\"id\":1,\"method\":\"common.db.login\",\"params\":[\"admin\",{\"password\":\"$TRYTON_ADMIN_PASSWORD\"},\"en\"]}" \
      "$url/$db/rpc/" > /dev/null 2>&1; do
    alive "$dir" || { log "trytond died:"; tail -20 "$dir/trytond.log" >&2; return 1; }
    (( SECONDS - t0 < 120 )) || { log "trytond did not answer in 120 s"; return 1; }
    sleep 0.2
  done
  log "trytond answering on $url after $((SECONDS - t0))s"
  {
    echo "FERRY_TRYTON_URL=$url/$db/"
    echo "FERRY_TRYTON_USER=admin"
    echo "FERRY_TRYTON_PASSWORD=$TRYTON_ADMIN_PASSWORD"
  } > "$dir/env"
  flock -u 8
  cat "$dir/env"
}

stop() {
  local dir="$1"
  if alive "$dir"; then
    local pid; pid="$(cat "$dir/pid")"
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped trytond (pid $pid)"
  fi
  rm -f "$dir/pid" "$dir/env"
}

case "${1:-}" in
  prepare) prepare ;;
  start) start "${2:?usage: tryton.sh start DIR}" ;;
  stop) stop "${2:?usage: tryton.sh stop DIR}" ;;
  run)
    dir="$(mktemp -d)"
    trap 'stop "$dir"; rm -rf "$dir"' EXIT INT TERM
    start "$dir"
    wait "$(cat "$dir/pid")" ;;
  *) echo "usage: $0 {prepare|start DIR|stop DIR|run}" >&2; exit 2 ;;
esac
