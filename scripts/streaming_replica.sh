#!/usr/bin/env bash
# A streaming replica of the machine's PostgreSQL (127.0.0.1:5432) on another port, so that
# tests/test_read_database.py reads from a real replica (READ_DATABASE) instead of a second
# connection to the same server:
#
#   scripts/streaming_replica.sh start 5442      # pg_basebackup, then a hot standby on 5442
#   TOPVIEW_TEST_DATABASE=postgres TOPVIEW_TEST_REPLICA_PORT=5442 \
#       .venv/bin/python -m pytest tests/test_read_database.py
#   scripts/streaming_replica.sh stop 5442       # stops it and removes its copy
#
# The copy is the whole cluster (every database on the server): mind the disk. The primary
# must let 127.0.0.1 connect for replication: a pg_hba.conf line is added if none does. A
# replication slot keeps the primary's WAL until the replica has it (on a busy server the
# segments are recycled before the replica starts otherwise): `stop` drops it, or the
# primary would keep WAL for ever.
# Run as root (the server runs as postgres) or as postgres.
set -euo pipefail
action=${1:?start or stop}
port=${2:-5442}
dir=${REPLICA_DIR:-/tmp/topview-replica-$port}
bin=/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -n 1)/bin
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
primary() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atq "$@"; }
slot=topview_replica_$port
drop_slot() {
  primary -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$slot'" >/dev/null
}

case $action in
start)
  hba=$(primary -c 'SHOW hba_file')
  if ! grep -Eq '^host[[:space:]]+replication' "$hba"; then
    echo "host replication postgres 127.0.0.1/32 trust  # scripts/streaming_replica.sh" >>"$hba"
    primary -c 'SELECT pg_reload_conf()' >/dev/null
  fi
  drop_slot
  rm -rf "$dir" && mkdir -p "$dir" && chmod 700 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p 5432 -U postgres -D "$dir" -R -X stream -c fast \
    -C -S "$slot"
  # Debian keeps the server's configuration in /etc: the copy gets its own, minimal one.
  as_postgres sh -c "printf 'host all all 127.0.0.1/32 trust\nlocal all all trust\n' >'$dir/pg_hba.conf'"
  as_postgres sh -c ": >'$dir/postgresql.conf'"
  max=$(primary -c 'SHOW max_connections')
  as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/replica.log" -w start -o \
    "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c hot_standby=on -c max_connections=$max -c shared_buffers=64MB"
  echo "replica of 127.0.0.1:5432 on 127.0.0.1:$port ($dir)"
  ;;
stop)
  as_postgres "$bin/pg_ctl" -D "$dir" -m fast -w stop || true
  drop_slot
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop [port]" >&2
  exit 2
  ;;
esac
