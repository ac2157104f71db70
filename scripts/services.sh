#!/usr/bin/env bash
# Starts the real backing services the tests and the cluster need, when they are not already
# running, on loopback. Usage: scripts/services.sh postgres|redis|kafka|s3|chromium   (prints the service address, or Chromium's path, on stdout);
# scripts/services.sh kafka-stop / s3-stop stops the broker / S3 server this script started.
# With PARLEY_SERVICES_LEDGER=<file> set, each service this call started (rather than found running,
# or installed, which may start it) is appended to that file; `scripts/services.sh stop <file>`
# then stops exactly those, newest first, and removes the file (npm test and npm run cluster do so).
# Everything it does is idempotent; progress goes to stderr.
set -euo pipefail

log() { echo "[services] $*" >&2; }

# close_fds: closes every descriptor above 2 in this (sub)shell. A service outlives us, so it must
# not inherit what our caller holds open, such as the machine lock that `flock` passes down.
close_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
}

# started NAME ARG: notes in the ledger (when there is one) that this call started NAME; ARG says how to stop it.
started() {
  if [ -n "${PARLEY_SERVICES_LEDGER:-}" ]; then echo "$1 $2" >> "$PARLEY_SERVICES_LEDGER"; fi
}

PGHOST_=${PARLEY_PG_HOST:-127.0.0.1}
PGPORT_=${PARLEY_PG_PORT:-5432}

pg_ready() { pg_isready -q -h "$PGHOST_" -p "$PGPORT_" 2>/dev/null; }

ensure_postgres() {
  local installed=0 version
  if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "PostgreSQL is not installed; installing it from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
    installed=1
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if ! pg_ready; then
    log "starting PostgreSQL $version on $PGHOST_:$PGPORT_"
    (close_fds; exec pg_ctlcluster --skip-systemctl-redirect "$version" main start) >&2 || true
    for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
    started postgres "$version"
  elif [ "$installed" = 1 ]; then
    started postgres "$version" # the package's own scripts started it
  fi
  if ! pg_ready; then log "PostgreSQL did not become ready"; return 1; fi
  # Trust auth on loopback is how these machines are set up; fall back to the postgres OS user.
  if ! psql -h "$PGHOST_" -p "$PGPORT_" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    log "cannot log in as postgres over TCP; check pg_hba.conf (trust for 127.0.0.1 is expected)"
    return 1
  fi
  echo "postgres://postgres@$PGHOST_:$PGPORT_/postgres"
}

REDIS_PORT_=${PARLEY_REDIS_PORT:-6379}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT_" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  local installed=0
  if ! command -v redis-server >/dev/null 2>&1; then
    log "Redis is not installed; installing it from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2
    installed=1
  fi
  if ! redis_ready; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT_"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    (close_fds; exec redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT_" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/parley.log) >&2 || true
    for _ in $(seq 1 40); do redis_ready && break; sleep 0.25; done
    started redis "$REDIS_PORT_"
  elif [ "$installed" = 1 ]; then
    started redis "$REDIS_PORT_" # the package's own scripts started it
  fi
  if ! redis_ready; then log "Redis did not become ready"; return 1; fi
  echo "redis://127.0.0.1:$REDIS_PORT_"
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KAFKA_PORT_=${PARLEY_KAFKA_PORT:-9092}
KAFKA_CTRL_PORT_=${PARLEY_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_DIR=${PARLEY_KAFKA_DIR:-$ROOT/.services/kafka}
# The jars are shared by every broker this script starts (a test's private broker too).
KAFKA_LIB=${PARLEY_KAFKA_LIB:-$ROOT/.services/kafka/lib}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# fetch_jars WHAT POM LIBDIR: a pom's runtime jars from Maven Central into LIBDIR, once (~/.m2 caches them).
# Maven's local repository is not safe for concurrent writers (npm test fetches Kafka's and S3Proxy's
# jars at once, and a due daily metadata refresh made one of them fail), so fetches take turns under a
# lock; a cached set is copied offline first, and an online fetch is tried twice.
fetch_jars() {
  if [ -d "$3" ] && [ -n "$(ls -A "$3" 2>/dev/null)" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || { log "maven is required to fetch the $1 jars"; return 1; }
  mkdir -p "$HOME/.m2"
  (
    flock 9
    local args=(-q -B -f "$2" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$3")
    if mvn -o "${args[@]}" >/dev/null 2>&1; then exit 0; fi
    rm -rf "$3"
    log "fetching $1 jars from Maven Central"
    mvn "${args[@]}" >&2 && exit 0
    rm -rf "$3"
    log "fetching $1 jars again"
    mvn "${args[@]}" >&2
  ) 9>"$HOME/.m2/parley-fetch.lock"
}

# stop_pidfile WHAT PIDFILE: SIGTERM the process this script started, SIGKILL after 30 s.
stop_pidfile() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || { log "no $1 started by this script"; return 0; }
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$2"
}

# free_port: a TCP port nobody listens on now, from the kernel.
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# A single-node Apache Kafka 3.9.1 broker in KRaft mode, from Maven Central jars (see RECIPES).
# A broker that exits while starting is tried once more on a fresh data directory, and a controller
# port someone else holds is replaced by a free one; what the broker printed goes to stderr.
ensure_kafka() {
  if port_open "$KAFKA_PORT_"; then echo "127.0.0.1:$KAFKA_PORT_"; return 0; fi
  command -v java >/dev/null 2>&1 || { log "java is required for Kafka"; return 1; }
  fetch_jars Kafka "$ROOT/scripts/kafka/pom.xml" "$KAFKA_LIB" || return 1
  start_kafka && return 0
  log "Kafka did not start; trying once more on a fresh data directory"
  rm -rf "$KAFKA_DIR/data"
  start_kafka
}

start_kafka() {
  local ctrl=$KAFKA_CTRL_PORT_
  if port_open "$ctrl"; then
    ctrl=$(free_port)
    log "127.0.0.1:$KAFKA_CTRL_PORT_ is taken; Kafka's controller listens on $ctrl"
    rm -rf "$KAFKA_DIR/data" # its metadata names the old controller address
  fi
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  cat > "$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT_,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT_
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  local cp="$KAFKA_LIB/*"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local id
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
    java -cp "$cp" kafka.tools.StorageTool format -t "$id" -c "$KAFKA_DIR/server.properties" >&2 || return 1
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT_"
  : > "$KAFKA_DIR/logs/server.log"
  (close_fds; exec setsid nohup java -Xms256m -Xmx512m -Dkafka.logs.dir="$KAFKA_DIR/logs" \
    -Dlog4j.configuration="file:$ROOT/scripts/kafka/log4j.properties" \
    -cp "$cp" kafka.Kafka "$KAFKA_DIR/server.properties") > "$KAFKA_DIR/logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$KAFKA_DIR/kafka.pid"
  started kafka "$KAFKA_DIR/kafka.pid"
  for _ in $(seq 1 180); do
    if port_open "$KAFKA_PORT_" && grep -q "Kafka Server started" "$KAFKA_DIR/logs/server.log" 2>/dev/null; then
      echo "127.0.0.1:$KAFKA_PORT_"; return 0
    fi
    if ! kill -0 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null; then
      log "Kafka exited; see $KAFKA_DIR/logs"
      tail -n 20 "$KAFKA_DIR/logs/stdout.log" >&2
      grep -E 'ERROR|FATAL|Exception' "$KAFKA_DIR/logs/server.log" 2>/dev/null | tail -n 10 >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "Kafka did not become ready in 90 s; see $KAFKA_DIR/logs"
  stop_pidfile Kafka "$KAFKA_DIR/kafka.pid"
  return 1
}


S3_PORT_=${PARLEY_S3_PORT:-9000}
S3_DIR=${PARLEY_S3_DIR:-$ROOT/.services/s3proxy}
# The credentials of the test-only S3 server (loopback only; printed nowhere else).
S3_IDENTITY_=${PARLEY_S3_ACCESS_KEY_ID:-parley-test}
S3_CREDENTIAL_=${PARLEY_S3_SECRET_ACCESS_KEY:-parley-test-secret}

# Any answer to an anonymous GET means the S3 API is up (S3Proxy answers 403 AccessDenied).
s3_ready() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$S3_PORT_ && printf 'GET / HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && head -c 5 <&3 | grep -q HTTP/" 2>/dev/null
}

# S3Proxy 2.9.0 (an S3-compatible server) on a filesystem backend, from Maven Central jars (see RECIPES).
# Prints the endpoint URL; the access key id and secret are the PARLEY_S3_* variables (defaults above).
ensure_s3() {
  if s3_ready; then echo "http://127.0.0.1:$S3_PORT_"; return 0; fi
  if port_open "$S3_PORT_"; then log "127.0.0.1:$S3_PORT_ is taken by something that is not S3; set PARLEY_S3_PORT"; return 1; fi
  command -v java >/dev/null 2>&1 || { log "java (17+) is required for S3Proxy"; return 1; }
  mkdir -p "$S3_DIR/data" "$S3_DIR/logs"
  fetch_jars S3Proxy "$ROOT/scripts/s3proxy/pom.xml" "$S3_DIR/lib" || return 1
  cat > "$S3_DIR/s3proxy.conf" <<PROPS
s3proxy.endpoint=http://127.0.0.1:$S3_PORT_
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_IDENTITY_
s3proxy.credential=$S3_CREDENTIAL_
jclouds.provider=filesystem
jclouds.filesystem.basedir=$S3_DIR/data
PROPS
  log "starting S3Proxy on 127.0.0.1:$S3_PORT_"
  (close_fds; exec setsid nohup java -Xms64m -Xmx512m -Dlogback.configurationFile="$ROOT/scripts/s3proxy/logback.xml" \
    -cp "$S3_DIR/lib/*" org.gaul.s3proxy.Main --properties "$S3_DIR/s3proxy.conf") \
    > "$S3_DIR/logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$S3_DIR/s3proxy.pid"
  started s3 "$S3_DIR/s3proxy.pid"
  for _ in $(seq 1 120); do
    if s3_ready; then echo "http://127.0.0.1:$S3_PORT_"; return 0; fi
    if ! kill -0 "$(cat "$S3_DIR/s3proxy.pid")" 2>/dev/null; then
      log "S3Proxy exited; see $S3_DIR/logs"; tail -n 20 "$S3_DIR/logs/stdout.log" >&2; return 1
    fi
    sleep 0.5
  done
  log "S3Proxy did not become ready in 60 s; see $S3_DIR/logs"
  return 1
}


# Debian's Chromium for the browser tests (Playwright drives it; its own browser download cannot work here).
# Prints the executable's path. Installing it is not noted in the ledger: a package stays installed.
ensure_chromium() {
  local bin
  bin=$(command -v chromium || true)
  if [ -z "$bin" ]; then
    log "Chromium is not installed; installing it from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq chromium) >&2 || { log "could not install chromium"; return 1; }
    bin=$(command -v chromium) || return 1
  fi
  echo "$bin"
}

# stop_redis PORT: shuts down the Redis on PORT (no save: this script starts it without persistence).
stop_redis() {
  redis-cli -h 127.0.0.1 -p "$1" shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 1 40); do redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1 || return 0; sleep 0.25; done
  log "Redis on 127.0.0.1:$1 did not stop"
}

# stop_ledger FILE: stops the services a ledger lists (see the top of this file), newest first, then removes it.
stop_ledger() {
  [ -f "$1" ] || return 0
  local name arg
  while read -r name arg; do
    [ -n "$name" ] || continue
    log "stopping $name (started by this run)"
    case "$name" in
      postgres) pg_ctlcluster --skip-systemctl-redirect "$arg" main stop -m fast >&2 || true ;;
      redis) stop_redis "$arg" ;;
      kafka) stop_pidfile Kafka "$arg" ;;
      s3) stop_pidfile S3Proxy "$arg" ;;
      *) log "unknown service in the ledger: $name" ;;
    esac
  done < <(tac "$1")
  rm -f "$1"
}

case "${1:-}" in
  postgres) ensure_postgres ;;
  redis) ensure_redis ;;
  kafka) ensure_kafka ;;
  kafka-stop) stop_pidfile Kafka "$KAFKA_DIR/kafka.pid" ;;
  s3) ensure_s3 ;;
  chromium) ensure_chromium ;;
  s3-stop) stop_pidfile S3Proxy "$S3_DIR/s3proxy.pid" ;;
  stop) stop_ledger "${2:?usage: $0 stop LEDGER}" ;;
  *) echo "usage: $0 postgres|redis|kafka|kafka-stop|s3|s3-stop|chromium|stop LEDGER" >&2; exit 2 ;;
esac
