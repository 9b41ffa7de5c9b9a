#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the store tests and print its URL.
# Installs Debian's postgresql package when no server binaries are found. The server runs as the
# 'postgres' system user (PostgreSQL refuses to run as root) from a fresh data folder in /tmp.
set -euo pipefail
PORT="${MEDSIGHT_CI_PG_PORT:-54329}"
port_busy() { python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $1)) != 0)"; }
if port_busy "$PORT"; then  # e.g. a server left by an earlier run on this machine: use a free port
  PORT="$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")"
fi

find_bin() {
  command -v "$1" 2>/dev/null && return
  ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}

INITDB="$(find_bin initdb || true)"
if [ -z "$INITDB" ]; then
  echo "installing PostgreSQL with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  INITDB="$(find_bin initdb)"
fi
PG_CTL="$(dirname "$INITDB")/pg_ctl"
[ -x "$PG_CTL" ] || PG_CTL="$(find_bin pg_ctl)"

DIR="$(mktemp -d /tmp/medsight-ci-pg.XXXXXX)"
as_server_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$DIR"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
as_server_user "$INITDB" -D "$DIR/data" -U medsight --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1
as_server_user "$PG_CTL" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >&2
echo "postgresql://medsight@127.0.0.1:$PORT/postgres"
