# Starts and stops real PostgreSQL and nats-server instances in a directory,
# on loopback ports, for the demo and the black-box tests. Source it; needs root
# (PostgreSQL refuses to run as root, so it runs as the postgres user).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

# start_postgres DIR PORT [OPTIONS]: initdb + start; the superuser is "postgres"
# (trust auth). OPTIONS: more server settings, e.g. "-c wal_level=logical".
start_postgres() {
  local dir=$1 port=$2 more=${3:-}
  mkdir -p "$dir/data" "$dir/sock"
  chown -R postgres:postgres "$dir"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off $more" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
}

stop_postgres() {
  local dir=$1
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# psql_as DIR PORT DB SQL...: runs SQL as the superuser.
psql_as() {
  local port=$1 db=$2
  shift 2
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

# start_nats DIR PORT MONITOR_PORT: nats-server with JetStream, in the background.
start_nats() {
  local dir=$1 port=$2 monitor=$3
  mkdir -p "$dir/js"
  nats-server -a 127.0.0.1 -js -sd "$dir/js" -p "$port" -m "$monitor" -l "$dir/nats.log" &
  echo $! >"$dir/nats.pid"
  local end=$((SECONDS + 10))
  until curl -fsS --noproxy '*' "http://127.0.0.1:$monitor/healthz" >/dev/null 2>&1; do
    if ((SECONDS > end)); then
      cat "$dir/nats.log" >&2
      return 1
    fi
    sleep 0.05
  done
}

stop_nats() {
  local dir=$1
  [[ -f "$dir/nats.pid" ]] || return 0
  local pid
  pid=$(cat "$dir/nats.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/nats.pid"
}

# start_nginx DIR: a real nginx master in the background whose nginx.conf
# (written here: daemon off, pid, error log and temp paths under DIR) includes
# DIR/upstreams/*.conf (where Backstop routes; created 0700) and then
# DIR/sites/*.conf (the caller writes its site there first). Waits until the
# master has written its pid file. Workers run as `nobody` under root: files
# they serve must be world-readable.
start_nginx() {
  local dir=$1
  mkdir -p "$dir/sites" "$dir/upstreams" "$dir/logs"
  chmod 700 "$dir/upstreams"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log notice;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  include $dir/upstreams/*.conf;
  include $dir/sites/*.conf;
}
CONF
  nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" 2>>"$dir/error.log" &
  local end=$((SECONDS + 10))
  until [[ -s "$dir/nginx.pid" ]]; do
    if ((SECONDS > end)) || ! kill -0 $! 2>/dev/null; then
      cat "$dir/error.log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# stop_nginx DIR: SIGQUIT (open connections finish), SIGKILL after 5 s.
stop_nginx() {
  local dir=$1 pid
  [[ -s "$dir/nginx.pid" ]] || return 0
  pid=$(cat "$dir/nginx.pid")
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
}

# start_s3rver DIR PORT BUCKET: the S3 stand-in from npm (tests/servers, installed
# by `scripts/install-deps --test`) on 127.0.0.1:PORT with BUCKET; its key pair
# is S3RVER / S3RVER. Waits until it answers; stop_s3rver DIR stops it.
S3RVER_BIN=${S3RVER_BIN:-$(dirname "${BASH_SOURCE[0]}")/../../tests/servers/node_modules/.bin/s3rver}
start_s3rver() {
  local dir=$1 port=$2 bucket=$3
  [[ -x "$S3RVER_BIN" ]] || { echo "s3rver is not installed: run scripts/install-deps --test" >&2; return 1; }
  mkdir -p "$dir/data"
  # s3rver's list continuation tokens use a cipher Node 17+ hides behind this flag.
  NODE_OPTIONS=--openssl-legacy-provider setsid "$S3RVER_BIN" -d "$dir/data" -a 127.0.0.1 -p "$port" --configure-bucket "$bucket" \
    --silent >"$dir/s3rver.log" 2>&1 </dev/null &
  echo $! >"$dir/s3rver.pid"
  local i
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null --max-time 1 --noproxy '*' "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  cat "$dir/s3rver.log" >&2
  return 1
}

stop_s3rver() {
  local dir=$1 pid
  pid=$(cat "$dir/s3rver.pid" 2>/dev/null) || return 0
  kill -- "-$pid" "$pid" 2>/dev/null || true
}
