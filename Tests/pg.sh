#!/usr/bin/env bash
# A throwaway PostgreSQL 15 (Debian's postgresql-15) for the tests and benchmarks: initdb in DIR, the server on a free
# port of 127.0.0.1 and a socket directory inside DIR, as a non-root user (the server refuses to run as root: as root
# this runs it as `loa-test`, created by Deploy/setup-debian.sh test, else `nobody`). The database user `loa` has a
# random password (scram-sha-256 over TCP) kept in DIR/password (0600, the caller's), so the tests read the password
# from a secret file as the daemon does.
#
# Usage: Tests/pg.sh start DIR    initdb and start; DIR must not exist or be empty
#        Tests/pg.sh url DIR      prints postgresql://loa@127.0.0.1:PORT/loa (no password)
#        Tests/pg.sh stop DIR     stops the server by its pid (fast shutdown) and removes DIR
#        Tests/pg.sh restart DIR  stops the server by its pid (fast shutdown: clients see their connections cut) and
#                                 starts it again on the same port and data directory (PostgreSQL restarting
#                                 mid-campaign); LOA_PG_DOWN_SECONDS (default 0) keeps it down that long in between
# Environment: LOA_PG_FSYNC=on for durable commits (benchmarks); the tests run with fsync off (an OS crash is no test).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: Tests/pg.sh start|url|stop|restart DIR" >&2; exit 2; }
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/postgres" ] || { echo "pg.sh: $bin/postgres is missing: run Deploy/setup-debian.sh test" >&2; exit 1; }

# Runs a command as the server's user.
as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    local user=nobody
    id loa-test >/dev/null 2>&1 && user=loa-test
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || { echo "pg.sh: $dir is not empty" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/password")
    mkdir -p "$dir/server"
    cp "$dir/password" "$dir/server/pwfile"
    if [ "$(id -u)" -eq 0 ]; then
      user=nobody
      id loa-test >/dev/null 2>&1 && user=loa-test
      chown -R "$user" "$dir/server"
      chmod 711 "$dir"
      runuser -u "$user" -- test -x "$dir/server" || { echo "pg.sh: $user cannot reach $dir (a parent directory is private): use a directory under /tmp" >&2; exit 1; }
    fi
    as_server "$bin/initdb" -D "$dir/server/data" -U loa --pwfile="$dir/server/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$dir/server/pwfile"
    mkdir -p "$dir/server/socket"
    [ "$(id -u)" -eq 0 ] && chown "$user" "$dir/server/socket"
    echo "$port" > "$dir/port"
    as_server "$bin/pg_ctl" -D "$dir/server/data" -l "$dir/server/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir/server/socket -c fsync=${LOA_PG_FSYNC:-off} -c max_connections=200" \
      start >/dev/null || { cat "$dir/server/server.log" >&2; exit 1; }
    as_server "$bin/createdb" -h "$dir/server/socket" -p "$port" -U loa loa
    echo "pg.sh: PostgreSQL 15 on 127.0.0.1:$port (pid $(head -1 "$dir/server/data/postmaster.pid"))" >&2
    ;;
  restart)
    pidfile="$dir/server/data/postmaster.pid"
    [ -f "$pidfile" ] || { echo "pg.sh: no server running in $dir" >&2; exit 1; }
    pid=$(head -1 "$pidfile")
    kill -INT "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$pid" 2>/dev/null || { echo "pg.sh: the server (pid $pid) did not stop" >&2; exit 1; }
    sleep "${LOA_PG_DOWN_SECONDS:-0}"
    port=$(cat "$dir/port")
    as_server "$bin/pg_ctl" -D "$dir/server/data" -l "$dir/server/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir/server/socket -c fsync=${LOA_PG_FSYNC:-off} -c max_connections=200" \
      start >/dev/null || { cat "$dir/server/server.log" >&2; exit 1; }
    echo "pg.sh: PostgreSQL 15 restarted on 127.0.0.1:$port (pid $(head -1 "$pidfile"))" >&2
    ;;
  url)
    echo "postgresql://loa@127.0.0.1:$(cat "$dir/port")/loa"
    ;;
  stop)
    pidfile="$dir/server/data/postmaster.pid"
    if [ -f "$pidfile" ]; then
      pid=$(head -1 "$pidfile")
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
    ;;
  *) echo "usage: Tests/pg.sh start|url|stop|restart DIR" >&2; exit 2 ;;
esac
