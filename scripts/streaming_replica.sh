#!/usr/bin/env bash
# A private PostgreSQL primary and a streaming replica of it, for READ_DATABASE's tests
# (tests/test_read_database.py, tests/test_streaming_replica.py; `nox -s replica` runs them):
#
#   scripts/streaming_replica.sh start 18300   # primary on 18300, hot standby on 18301
#   TOPVIEW_TEST_DATABASE=postgres PGPORT=18300 TOPVIEW_TEST_REPLICA_PORT=18301 \
#       .venv/bin/python -m pytest tests/test_read_database.py tests/test_streaming_replica.py
#   scripts/streaming_replica.sh stop 18300    # stops both and removes their folders
#
# The primary is a fresh `initdb` (a few MB), not the machine's server: a replica of a big,
# busy cluster takes GBs to copy and falls behind. The standby is `pg_basebackup -R` of it,
# streaming through a replication slot, with hot_standby on. Both trust 127.0.0.1.
# PostgreSQL refuses to run as root: as root, both run as the `postgres` user.
set -euo pipefail
action=${1:?start or stop}
port=${2:-18300}
replica_port=$((port + 1))
dir=${REPLICA_DIR:-/tmp/topview-replica-pair-$port}
bin=/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -n 1)/bin
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
ctl() { as_owner "$bin/pg_ctl" -D "$1" -l "$1/server.log" "${@:2}"; }
# Small servers: the test suite opens a few dozen connections at most.
options="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=60"
options+=" -c shared_buffers=32MB -c fsync=off -c full_page_writes=off"

case $action in
start)
  "$0" stop "$port" >/dev/null 2>&1 || true
  mkdir -p "$dir" && chmod 700 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_owner "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log"
  as_owner sh -c "echo 'host replication postgres 127.0.0.1/32 trust' >>'$dir/primary/pg_hba.conf'"
  ctl "$dir/primary" -w -o "-p $port $options" start >/dev/null
  as_owner "$bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$dir/replica" \
    -R -X stream -c fast -C -S topview_replica
  ctl "$dir/replica" -w -o "-p $replica_port $options -c hot_standby=on" start >/dev/null
  echo "primary on 127.0.0.1:$port, its streaming replica on 127.0.0.1:$replica_port ($dir)"
  ;;
stop)
  for server in replica primary; do
    [ -d "$dir/$server" ] && { ctl "$dir/$server" -m immediate -w stop || true; }
  done
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop [port]" >&2
  exit 2
  ;;
esac
