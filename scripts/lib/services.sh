# Shared by scripts/test and scripts/bench: installs PostgreSQL and etcd from Debian's
# packages when missing, starts a private instance of each on free loopback ports with
# data in a temporary directory, exports their addresses, and stops exactly those
# processes on exit. Source it; then call `kflex_services_start`.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The newest PostgreSQL server binaries directory (Debian keeps them off PATH).
kflex_pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  return 1
}

kflex_install_packages() {
  local missing=()
  kflex_pg_bindir >/dev/null || missing+=(postgresql)
  command -v "${KFLEX_ETCD_BIN:-etcd}" >/dev/null 2>&1 || missing+=(etcd-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from Debian's packages (needed by the tests)"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "please install: ${missing[*]} (apt-get install ${missing[*]})"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "no apt-get here; please install: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  kflex_pg_bindir >/dev/null || die "PostgreSQL server binaries still missing after install"
  command -v "${KFLEX_ETCD_BIN:-etcd}" >/dev/null 2>&1 || die "etcd still missing after install"
}

# A TCP port on 127.0.0.1 that nothing listens on now.
kflex_free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  die "no free port found"
}

# Runs a command as the unprivileged owner of the data directory when we are root
# (PostgreSQL refuses to run as root).
kflex_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$KFLEX_SERVICE_USER" -- "$@"; else "$@"; fi
}

kflex_services_stop() {
  local status=$?
  if [ -n "${KFLEX_PG_DATA:-}" ] && [ -f "$KFLEX_PG_DATA/postmaster.pid" ]; then
    say "stopping the test PostgreSQL"
    kflex_as_owner "$KFLEX_PG_BINDIR/pg_ctl" -D "$KFLEX_PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${KFLEX_ETCD_PID:-}" ] && kill -0 "$KFLEX_ETCD_PID" 2>/dev/null; then
    say "stopping the test etcd"
    kill "$KFLEX_ETCD_PID" 2>/dev/null || true
    wait "$KFLEX_ETCD_PID" 2>/dev/null || true
  fi
  if [ -n "${KFLEX_SERVICES_DIR:-}" ] && [ -d "$KFLEX_SERVICES_DIR" ]; then
    if [ "$status" -ne 0 ] && [ "${KFLEX_KEEP_LOGS_ON_FAILURE:-1}" = 1 ]; then
      say "logs of the test services: $KFLEX_SERVICES_DIR/*.log (kept because of the failure)"
      find "$KFLEX_SERVICES_DIR" -mindepth 1 -maxdepth 1 ! -name '*.log' -exec rm -rf {} +
    else
      rm -rf "$KFLEX_SERVICES_DIR"
    fi
  fi
  return "$status"
}

kflex_wait_etcd_healthy() {
  local port=$1 reply
  for _ in $(seq 1 100); do
    if reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null ) \
      && [[ "$reply" == *'"health":"true"'* ]]; then
      return 0
    fi
    kill -0 "$KFLEX_ETCD_PID" 2>/dev/null || die "etcd exited; see $KFLEX_SERVICES_DIR/etcd.log"
    sleep 0.1
  done
  die "etcd did not become healthy; see $KFLEX_SERVICES_DIR/etcd.log"
}

# Starts PostgreSQL and etcd; exports KFLEX_TEST_POSTGRES_URL, KFLEX_TEST_ETCD_ENDPOINTS
# and KFLEX_ETCD_BIN. `KFLEX_PG_DURABLE=1` keeps PostgreSQL's fsync on (benchmarks).
kflex_services_start() {
  kflex_install_packages
  KFLEX_PG_BINDIR=$(kflex_pg_bindir)
  KFLEX_ETCD_BIN=$(command -v "${KFLEX_ETCD_BIN:-etcd}")
  export KFLEX_ETCD_BIN
  KFLEX_SERVICE_USER=${KFLEX_SERVICE_USER:-postgres}
  if [ "$(id -u)" -eq 0 ] && ! id "$KFLEX_SERVICE_USER" >/dev/null 2>&1; then
    die "user $KFLEX_SERVICE_USER (to run PostgreSQL as) does not exist"
  fi
  KFLEX_SERVICES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kflex-services.XXXXXX")
  trap kflex_services_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  chmod 755 "$KFLEX_SERVICES_DIR"

  local pg_port fsync
  pg_port=$(kflex_free_port)
  KFLEX_PG_DATA="$KFLEX_SERVICES_DIR/postgres"
  mkdir -p "$KFLEX_PG_DATA"
  [ "$(id -u)" -eq 0 ] && chown "$KFLEX_SERVICE_USER" "$KFLEX_PG_DATA" "$KFLEX_SERVICES_DIR"
  if [ "${KFLEX_PG_DURABLE:-0}" = 1 ]; then fsync=on; else fsync=off; fi
  say "starting PostgreSQL ($KFLEX_PG_BINDIR) on 127.0.0.1:$pg_port, fsync=$fsync, data in $KFLEX_PG_DATA"
  kflex_as_owner "$KFLEX_PG_BINDIR/initdb" -D "$KFLEX_PG_DATA" -U kflex --auth=trust -E UTF8 \
    --locale=C --no-sync >"$KFLEX_SERVICES_DIR/initdb.log" 2>&1 \
    || die "initdb failed; see $KFLEX_SERVICES_DIR/initdb.log"
  kflex_as_owner "$KFLEX_PG_BINDIR/pg_ctl" -D "$KFLEX_PG_DATA" -w -t 60 \
    -l "$KFLEX_SERVICES_DIR/postgres.log" \
    -o "-p $pg_port -k $KFLEX_PG_DATA -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=$fsync" \
    start >/dev/null || die "PostgreSQL did not start; see $KFLEX_SERVICES_DIR/postgres.log"
  export KFLEX_TEST_POSTGRES_URL="postgres://kflex@127.0.0.1:$pg_port/postgres"

  local client_port peer_port
  client_port=$(kflex_free_port)
  peer_port=$(kflex_free_port)
  say "starting etcd ($KFLEX_ETCD_BIN) on 127.0.0.1:$client_port"
  "$KFLEX_ETCD_BIN" --name kflex-test --data-dir "$KFLEX_SERVICES_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$client_port" \
    --advertise-client-urls "http://127.0.0.1:$client_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "kflex-test=http://127.0.0.1:$peer_port" \
    --max-request-bytes=3145728 \
    >"$KFLEX_SERVICES_DIR/etcd.log" 2>&1 &
  KFLEX_ETCD_PID=$!
  kflex_wait_etcd_healthy "$client_port"
  export KFLEX_TEST_ETCD_ENDPOINTS="http://127.0.0.1:$client_port"
  say "services ready: KFLEX_TEST_POSTGRES_URL=$KFLEX_TEST_POSTGRES_URL KFLEX_TEST_ETCD_ENDPOINTS=$KFLEX_TEST_ETCD_ENDPOINTS"
}
