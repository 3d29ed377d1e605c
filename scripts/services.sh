#!/usr/bin/env bash
# Local backing services for contentstream, without Docker:
#   * Apache Kafka 4.x, single node, KRaft combined mode (broker + controller),
#     jars resolved from Maven Central with scripts/kafka/pom.xml;
#   * Redis (Debian's redis-server).
#
# Usage: scripts/services.sh install|start|stop [--clean]|status
#
#   install   resolve the Kafka jars into $SERVICES_DIR/kafka/libs (skipped when a
#             stamp keyed on the pom's hash says they are complete), and apt-get
#             install redis-server / prometheus when missing.
#   start     install, then start Kafka and Redis (each left alone if already up),
#             wait until both answer, print the connection strings.
#   stop      SIGTERM both (SIGKILL after 30 s), remove pid files.
#             `stop --clean` (or CONTENTSTREAM_SERVICES_CLEAN=1) also wipes the
#             data and log dirs (the jar cache in kafka/libs is kept).
#   status    print each service's state; exit 0 when both are up, 1 otherwise.
#
# Environment:
#   CONTENTSTREAM_SERVICES_DIR           state dir (default <repo>/.services)
#   CONTENTSTREAM_KAFKA_PORT             broker listener       (default 19092)
#   CONTENTSTREAM_KAFKA_CONTROLLER_PORT  KRaft controller      (default 19093)
#   CONTENTSTREAM_REDIS_PORT             redis                 (default 16379)
#   CONTENTSTREAM_KAFKA_START_TIMEOUT    readiness timeout, s  (default 90)
#   CONTENTSTREAM_KAFKA_HEAP             JVM heap flags (default "-Xms256m -Xmx768m")
#   CONTENTSTREAM_KAFKA_JVM_OPTS         other JVM flags; the default includes
#       -XX:TieredStopAtLevel=1 (C1 JIT only): on a busy 2-core machine the
#       broker becomes ready about twice as fast without C2 compiler threads.
#   CONTENTSTREAM_KAFKA_EXTRA_PROPERTIES optional file whose contents are appended
#       to the generated server.properties on every start (hook for extra
#       listeners, e.g. SASL_SSL). Later keys override earlier ones
#       (java.util.Properties semantics), so the file may redefine `listeners`,
#       `advertised.listeners` and `listener.security.protocol.map` as a whole.
#       The placeholders @KAFKA_PORT@, @KAFKA_CONTROLLER_PORT@, @SERVICES_DIR@ and
#       @KAFKA_HOME@ are substituted. The default protocol map already knows
#       PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (and CONTROLLER). Example:
#         listeners=PLAINTEXT://127.0.0.1:@KAFKA_PORT@,CONTROLLER://127.0.0.1:@KAFKA_CONTROLLER_PORT@,SASL_SSL://127.0.0.1:19094
#         advertised.listeners=PLAINTEXT://127.0.0.1:@KAFKA_PORT@,SASL_SSL://127.0.0.1:19094
#         sasl.enabled.mechanisms=SCRAM-SHA-512
#         listener.name.sasl_ssl.ssl.keystore.location=...
#       A running broker is not restarted when the file changes: stop first.
#   CONTENTSTREAM_SERVICES_CLEAN=1       same as `stop --clean`
#
# Everything listens on 127.0.0.1 only.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_SRC_DIR="$REPO_ROOT/scripts/kafka"
SERVICES_DIR="${CONTENTSTREAM_SERVICES_DIR:-$REPO_ROOT/.services}"

KAFKA_PORT="${CONTENTSTREAM_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${CONTENTSTREAM_KAFKA_CONTROLLER_PORT:-19093}"
REDIS_PORT="${CONTENTSTREAM_REDIS_PORT:-16379}"
KAFKA_START_TIMEOUT="${CONTENTSTREAM_KAFKA_START_TIMEOUT:-90}"
KAFKA_HEAP="${CONTENTSTREAM_KAFKA_HEAP:--Xms256m -Xmx768m}"
KAFKA_JVM_OPTS="${CONTENTSTREAM_KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -XX:TieredStopAtLevel=1 -Xshare:auto -Djava.awt.headless=true}"

KAFKA_HOME="$SERVICES_DIR/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOGS="$KAFKA_HOME/logs"
KAFKA_CONF="$KAFKA_HOME/server.properties"
KAFKA_PIDFILE="$KAFKA_HOME/kafka.pid"
KAFKA_STAMP="$KAFKA_LIBS/.complete"

REDIS_HOME="$SERVICES_DIR/redis"
REDIS_DATA="$REDIS_HOME/data"
REDIS_LOGS="$REDIS_HOME/logs"
REDIS_PIDFILE="$REDIS_HOME/redis.pid"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the pid from pid file $1 when that process is alive and its command
# line contains $2 (guards against pid reuse); fails otherwise.
live_pid() {
    local pidfile="$1" pattern="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

kafka_pid() { live_pid "$KAFKA_PIDFILE" "kafka.Kafka"; }
redis_pid() { live_pid "$REDIS_PIDFILE" "redis-server"; }

kafka_up() { kafka_pid >/dev/null && port_open "$KAFKA_PORT"; }
redis_up() {
    redis_pid >/dev/null && [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    else
        command -v java || return 1
    fi
}

# Major Java version of $1 (17 for "17.0.15", 8 for "1.8.0_x").
java_major() {
    local v
    v="$("$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}')"
    v="${v#1.}"
    printf '%s\n' "${v%%.*}"
}

sha256_of() { sha256sum "$1" | awk '{print $1}'; }

run_as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# apt-get install the Debian packages given as arguments (one apt call).
# A temporary policy-rc.d stops the packages' init scripts from starting
# system-wide daemons (e.g. redis on 6379) during installation.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
    log "apt-get install $*"
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e "$policy" ]]; then
        run_as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
        added_policy=1
    fi
    local rc=0
    {
        run_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q &&
        run_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@"
    } >&2 || rc=$?
    if [[ "$added_policy" -eq 1 ]]; then
        run_as_root rm -f "$policy"
    fi
    [[ "$rc" -eq 0 ]] || die "apt-get install $* failed (rc=$rc)"
}

# ---------------------------------------------------------------- install

install_system_packages() {
    local pkgs=()
    local java
    if ! java="$(java_bin)" || [[ "$(java_major "$java")" -lt 17 ]]; then
        pkgs+=(openjdk-17-jre-headless)
    fi
    command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        pkgs+=(redis-server)
    fi
    if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
        pkgs+=(prometheus)
    fi
    if [[ "${#pkgs[@]}" -gt 0 ]]; then
        apt_install "${pkgs[@]}"
    fi
    java="$(java_bin)" || die "java not found after install"
    [[ "$(java_major "$java")" -ge 17 ]] || die "Kafka 4.x needs Java 17+, $java is $(java_major "$java") (set JAVA_HOME)"
}

install_kafka_libs() {
    local want
    want="$(sha256_of "$KAFKA_SRC_DIR/pom.xml")"
    if [[ -f "$KAFKA_STAMP" && "$(cat "$KAFKA_STAMP")" == "$want" ]]; then
        return 0
    fi
    log "resolving Kafka jars with Maven into $KAFKA_LIBS"
    mkdir -p "$KAFKA_HOME"
    local tmp="$KAFKA_HOME/libs.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! mvn -B -q -Dstyle.color=never -f "$KAFKA_SRC_DIR/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.out" 2>&1; then
        cat "$KAFKA_HOME/mvn.out" >&2
        rm -rf "$tmp"
        die "maven could not resolve scripts/kafka/pom.xml (output above)"
    fi
    rm -f "$KAFKA_HOME/mvn.out"
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "kafka_2.13 jar missing after maven run"; }
    printf '%s\n' "$want" >"$tmp/.complete"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
}

cmd_install() {
    install_system_packages
    install_kafka_libs
}

# ---------------------------------------------------------------- kafka

write_kafka_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    cat >"$KAFKA_CONF" <<EOF
# Generated by scripts/services.sh on every start; do not edit.
# Single-node KRaft, combined broker + controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL

log.dirs=${KAFKA_DATA}
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true

# Internal topics: one replica (single node), few partitions (faster creation).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Accept messages up to 10 MiB (tests send 5 MB payloads).
message.max.bytes=10485760
replica.fetch.max.bytes=10485760

# Keep the footprint small. The dedupe buffer must be strictly MORE than 1 MiB
# per cleaner thread (KafkaConfig rejects exactly 1048576), hence 2 MiB.
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=2097152
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    local extra="${CONTENTSTREAM_KAFKA_EXTRA_PROPERTIES:-}"
    if [[ -n "$extra" ]]; then
        [[ -f "$extra" ]] || die "CONTENTSTREAM_KAFKA_EXTRA_PROPERTIES=$extra is not a file"
        {
            printf '\n# ---- appended from %s\n' "$extra"
            sed -e "s|@KAFKA_PORT@|${KAFKA_PORT}|g" \
                -e "s|@KAFKA_CONTROLLER_PORT@|${KAFKA_CONTROLLER_PORT}|g" \
                -e "s|@SERVICES_DIR@|${SERVICES_DIR}|g" \
                -e "s|@KAFKA_HOME@|${KAFKA_HOME}|g" "$extra"
            printf '\n'
        } >>"$KAFKA_CONF"
    fi
}

# Kafka-style random UUID: 16 random bytes, URL-safe base64 without padding,
# not starting with '-' (same rule as org.apache.kafka.common.Uuid.randomUuid).
# Generated here rather than with `StorageTool random-uuid` to save a JVM start.
random_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "${id:0:1}" != "-" ]] && { printf '%s\n' "$id"; return; }
    done
}

format_kafka_storage() {
    local marker="$KAFKA_DATA/meta.properties" formatted_port="$KAFKA_HOME/formatted.controller-port"
    if [[ -f "$marker" ]]; then
        if [[ -f "$formatted_port" && "$(cat "$formatted_port")" != "$KAFKA_CONTROLLER_PORT" ]]; then
            die "Kafka storage in $KAFKA_DATA was formatted for controller port $(cat "$formatted_port"), not $KAFKA_CONTROLLER_PORT; run '$0 stop --clean' first"
        fi
        return 0
    fi
    local java cluster_id
    java="$(java_bin)"
    cluster_id="$(random_cluster_id)"
    log "formatting Kafka storage (cluster id $cluster_id)"
    if ! "$java" -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
            -cp "$KAFKA_LIBS/*" \
            -Dlog4j2.configurationFile="$KAFKA_SRC_DIR/log4j2.xml" -Dkafka.logs.dir="$KAFKA_LOGS" \
            kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$KAFKA_CONF" \
            >"$KAFKA_LOGS/format.out" 2>&1; then
        cat "$KAFKA_LOGS/format.out" >&2
        die "kafka storage format failed"
    fi
    printf '%s\n' "$KAFKA_CONTROLLER_PORT" >"$formatted_port"
}

start_kafka() {
    if kafka_pid >/dev/null; then
        if port_open "$KAFKA_PORT"; then
            log "kafka already running (pid $(kafka_pid))"
            return 0
        fi
        log "kafka process $(kafka_pid) alive but port $KAFKA_PORT closed; waiting for it"
        wait_kafka_ready "$(kafka_pid)"
        return 0
    fi
    rm -f "$KAFKA_PIDFILE"
    port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is in use by a process not started by this script (set CONTENTSTREAM_KAFKA_PORT)"
    port_open "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is in use by a process not started by this script (set CONTENTSTREAM_KAFKA_CONTROLLER_PORT)"

    write_kafka_config
    format_kafka_storage

    # Fresh log for this run, so the readiness check only sees this start.
    [[ -f "$KAFKA_LOGS/server.log" ]] && mv -f "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/server.log.prev"
    local java pid
    java="$(java_bin)"
    log "starting kafka on 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)"
    # setsid: own session, so a Ctrl-C / SIGHUP to the caller does not reach it;
    # in a non-interactive script setsid execs in place, so $! is java's pid.
    # shellcheck disable=SC2086  # KAFKA_HEAP / KAFKA_JVM_OPTS are lists of flags
    setsid nohup "$java" $KAFKA_HEAP $KAFKA_JVM_OPTS \
        -Dlog4j2.configurationFile="$KAFKA_SRC_DIR/log4j2.xml" \
        -Dkafka.logs.dir="$KAFKA_LOGS" \
        -cp "$KAFKA_LIBS/*" \
        kafka.Kafka "$KAFKA_CONF" \
        </dev/null >"$KAFKA_LOGS/kafka.out" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
    wait_kafka_ready "$pid"
}

wait_kafka_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            kafka_failure "kafka process $pid exited during startup"
        fi
        if grep -qs "Kafka Server started" "$KAFKA_LOGS/server.log" && port_open "$KAFKA_PORT"; then
            log "kafka ready"
            return 0
        fi
        sleep 0.2
    done
    kafka_failure "kafka not ready after ${KAFKA_START_TIMEOUT}s"
}

kafka_failure() {
    {
        printf '[services] ERROR: %s\n' "$1"
        printf -- '--- tail of %s\n' "$KAFKA_LOGS/kafka.out"
        tail -n 40 "$KAFKA_LOGS/kafka.out" 2>/dev/null || true
        printf -- '--- tail of %s\n' "$KAFKA_LOGS/server.log"
        tail -n 60 "$KAFKA_LOGS/server.log" 2>/dev/null || true
    } >&2
    exit 1
}

# ---------------------------------------------------------------- redis

start_redis() {
    if redis_pid >/dev/null; then
        if redis_up; then
            log "redis already running (pid $(redis_pid))"
            return 0
        fi
    else
        rm -f "$REDIS_PIDFILE"
        port_open "$REDIS_PORT" && die "port $REDIS_PORT is in use by a process not started by this script (set CONTENTSTREAM_REDIS_PORT)"
        mkdir -p "$REDIS_DATA" "$REDIS_LOGS"
        log "starting redis on 127.0.0.1:$REDIS_PORT"
        if ! redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
                --save '' --appendonly no \
                --daemonize yes --pidfile "$REDIS_PIDFILE" \
                --logfile "$REDIS_LOGS/redis.log" --dir "$REDIS_DATA" \
                </dev/null >"$REDIS_LOGS/redis.out" 2>&1 9>&-; then
            cat "$REDIS_LOGS/redis.out" >&2
            die "redis-server failed to start"
        fi
    fi
    local deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        redis_up && { log "redis ready"; return 0; }
        sleep 0.1
    done
    tail -n 30 "$REDIS_LOGS/redis.log" >&2 2>/dev/null || true
    die "redis not answering PING on 127.0.0.1:$REDIS_PORT after 30s"
}

# ---------------------------------------------------------------- stop

# stop_pid NAME PIDFILE PATTERN
stop_service() {
    local name="$1" pidfile="$2" pattern="$3" pid
    if ! pid="$(live_pid "$pidfile" "$pattern")"; then
        rm -f "$pidfile"
        log "$name not running"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop within 30s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    local clean="${CONTENTSTREAM_SERVICES_CLEAN:-0}"
    for arg in "$@"; do
        case "$arg" in
            --clean) clean=1 ;;
            *) die "unknown stop option: $arg" ;;
        esac
    done
    stop_service kafka "$KAFKA_PIDFILE" "kafka.Kafka"
    stop_service redis "$REDIS_PIDFILE" "redis-server"
    if [[ "$clean" == "1" ]]; then
        log "wiping data and logs under $SERVICES_DIR (jar cache kept)"
        rm -rf "$KAFKA_DATA" "$KAFKA_LOGS" "$KAFKA_CONF" "$KAFKA_HOME/formatted.controller-port" \
               "$REDIS_DATA" "$REDIS_LOGS"
    fi
}

# ---------------------------------------------------------------- status / start

cmd_status() {
    local rc=0
    if kafka_up; then
        printf 'kafka: up   (pid %s, 127.0.0.1:%s)\n' "$(kafka_pid)" "$KAFKA_PORT"
    else
        printf 'kafka: down (127.0.0.1:%s)\n' "$KAFKA_PORT"
        rc=1
    fi
    if redis_up; then
        printf 'redis: up   (pid %s, 127.0.0.1:%s)\n' "$(redis_pid)" "$REDIS_PORT"
    else
        printf 'redis: down (127.0.0.1:%s)\n' "$REDIS_PORT"
        rc=1
    fi
    return "$rc"
}

cmd_start() {
    cmd_install
    local t0=$SECONDS
    start_kafka
    start_redis
    log "services up in $((SECONDS - t0))s"
    printf 'KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%s\n' "$KAFKA_PORT"
    printf 'REDIS_URL=redis://127.0.0.1:%s/0\n' "$REDIS_PORT"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# Serialise install/start/stop on one services dir (parallel test sessions).
# The daemons are launched with fd 9 closed so they do not keep holding it.
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    mkdir -p "$SERVICES_DIR"
    exec 9>"$SERVICES_DIR/.lock"
    flock -w 900 9 || die "timed out waiting for the lock $SERVICES_DIR/.lock"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        install|start|stop) take_lock ;;
    esac
    case "$cmd" in
        install) cmd_install ;;
        start) cmd_start ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        -h|--help|help|"") usage ;;
        *) printf 'unknown command: %s\n' "$cmd" >&2; usage ;;
    esac
}

main "$@"
