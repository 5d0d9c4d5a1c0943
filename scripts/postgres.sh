#!/usr/bin/env bash
# Start a private PostgreSQL server on 127.0.0.1 for the test suite (from Debian's packages)
# and print its SQLAlchemy URL on stdout; exit non-zero with the reason on stderr when it
# cannot (no package, no root, no postgres user). Usage: url=$(scripts/postgres.sh DIR),
# and scripts/postgres.sh DIR stop.
set -euo pipefail
dir=${1:?usage: postgres.sh DATA_DIR [stop]}
port=${ARCHEVO_PG_PORT:-54329}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "${2:-}" = stop ]; then
  as_postgres "$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")/pg_ctl" -D "$dir" stop -m fast
  exit
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  command -v apt-get >/dev/null || { echo "no PostgreSQL and no apt-get" >&2; exit 1; }
  { apt-get install -y -q postgresql || { apt-get update -q && apt-get install -y -q postgresql; }; } >/dev/null 2>&1 \
    || { echo "cannot install Debian's postgresql package" >&2; exit 1; }
fi
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
id postgres >/dev/null 2>&1 || { echo "no postgres user to run the server as" >&2; exit 1; }
while (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done  # a free port
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -f "$dir/PG_VERSION" ]; then
  as_postgres "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
fi
as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null
echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
