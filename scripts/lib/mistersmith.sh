# Builds the mistersmith world in a directory: PostgreSQL and nats-server with
# the procedures' schema, seed rows and streams; releases v1 (healthy) and v2
# (unhealthy, with a migration that writes rows and publishes messages) of the
# orchestrator and the web UI; config files; nginx in front of the web UI
# (its site config a traffic component). Exports what
# examples/mistersmith/backstop.yaml reads. Used by the demo and the tests.
#
# REQUIRES: servers.sh sourced; DEMO_SERVICE and DEMO_SEED set to the built binaries.

# setup_mistersmith WORK: starts the servers and writes everything; sets DB, NATS_URL.
setup_mistersmith() {
  local work=$1
  local ports
  mapfile -t ports < <(pick_ports 8)
  PGPORT=${ports[0]} NATS_PORT=${ports[1]} NATS_MONITOR_PORT=${ports[2]}
  ORCHESTRATOR_PORT=${ports[3]} ORCHESTRATOR_GRPC_PORT=${ports[4]}
  WEBUI_BLUE_PORT=${ports[5]} WEBUI_GREEN_PORT=${ports[6]} WEB_FRONT_PORT=${ports[7]}
  start_postgres "$work/pg" "$PGPORT"
  psql_as "$PGPORT" postgres -c "CREATE ROLE mistersmith LOGIN SUPERUSER" \
    -c "CREATE DATABASE mistersmith OWNER mistersmith"
  start_nats "$work/nats" "$NATS_PORT" "$NATS_MONITOR_PORT"
  DB="host=127.0.0.1 port=$PGPORT dbname=mistersmith user=mistersmith"
  NATS_URL="nats://127.0.0.1:$NATS_PORT"
  "$DEMO_SEED" init --database "$DB" --nats "$NATS_URL"

  local role
  for role in orchestrator webui; do
    "$DEMO_SERVICE" make-release --role $role --version v1 --healthy true \
      --dir "$work/$role/releases/v1" >/dev/null
    "$DEMO_SERVICE" make-release --role $role --version v2 --healthy false \
      --dir "$work/$role/releases/v2" >/dev/null
  done
  # v2 of the orchestrator runs a migration on start that writes to the
  # database and publishes messages: the data a rollback must account for.
  cat >"$work/orchestrator/releases/v2/bin/orchestrator" <<SH
#!/bin/sh
"$DEMO_SEED" migrate-v2 --database "$DB" --nats "$NATS_URL" --rows 25 --messages 40 || exit 1
exec "$DEMO_SERVICE" serve "\$@"
SH
  chmod 755 "$work/orchestrator/releases/v2/bin/orchestrator"
  mkdir -p "$work/config"
  echo '{"orchestrator": {"max_agents": 12, "schema": 1}}' >"$work/config/config.json"
  # nginx serves the web UI on WEB_FRONT_PORT through the upstream `webui`, a
  # file in the directory where Backstop routes upstreams: the web UI is
  # blue/green, and each deploy rewrites it to the slot that went live. Until
  # the first deploy it names the blue slot.
  mkdir -p "$work/nginx/sites" "$work/nginx/upstreams"
  chmod 700 "$work/nginx/upstreams"
  cat >"$work/nginx/sites/webui.conf" <<CONF
server {
  listen 127.0.0.1:$WEB_FRONT_PORT;
  location / { proxy_pass http://webui; }
}
CONF
  printf 'upstream webui {\n  server 127.0.0.1:%s;\n}\n' "$WEBUI_BLUE_PORT" >"$work/nginx/upstreams/webui.conf"
  start_nginx "$work/nginx"
  NGINX_CONF="$work/nginx/nginx.conf" NGINX_PID="$work/nginx/nginx.pid"
  NGINX_PREFIX="$work/nginx" NGINX_ERROR_LOG="$work/nginx/error.log"
  NGINX_SITE="$work/nginx/sites/webui.conf" NGINX_UPSTREAMS="$work/nginx/upstreams"

  export MISTERSMITH_ROOT="$work" BACKSTOP_STATE_DIR="$work/state"
  export BACKSTOP_ENVIRONMENT=${BACKSTOP_ENVIRONMENT:-production}
  export PGPORT PGHOST=127.0.0.1 PGDATABASE=mistersmith PGUSER=mistersmith
  export NATS_PORT NATS_MONITOR_PORT ORCHESTRATOR_PORT ORCHESTRATOR_GRPC_PORT
  export WEBUI_BLUE_PORT WEBUI_GREEN_PORT WEB_FRONT_PORT NGINX_CONF NGINX_PID NGINX_PREFIX NGINX_ERROR_LOG
  export NGINX_SITE NGINX_UPSTREAMS
  export HEALTH_INTERVAL=${HEALTH_INTERVAL:-1s} HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-1s}
  export HEALTH_RETRIES=${HEALTH_RETRIES:-3} HEALTH_START_PERIOD=${HEALTH_START_PERIOD:-5s}
}

# teardown_mistersmith WORK SPEC BACKSTOP: stops the services and the servers.
teardown_mistersmith() {
  local work=$1 spec=$2 backstop=$3
  [[ -x "$backstop" && -n "$spec" ]] && "$backstop" --spec "$spec" stop --all >/dev/null 2>&1
  stop_nginx "$work/nginx"
  stop_postgres "$work/pg"
  stop_nats "$work/nats"
}
