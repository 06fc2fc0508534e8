#!/usr/bin/env bash
# Starts whichever of the local PostgreSQL (5432), Redis (6379) and NATS JetStream (4222) is
# down, installing a missing server with apt-get, and waits until each answers (30 s each).
# The tests and .ci/run use these standard ports (DESIGN §12). Servers already up are left
# alone: other tests and runs share them. Exits non-zero, with the server's log tail, if one
# does not come up.
set -euo pipefail

readonly WAIT_SECONDS=30
apt_updated=0

log() { printf 'services: %s\n' "$*"; }

die() {
    printf 'services: ERROR: %s\n' "$1" >&2
    if [[ -n "${2:-}" && -r "$2" ]]; then
        printf -- '--- last lines of %s ---\n' "$2" >&2
        tail -n 30 "$2" >&2 || true
    fi
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        as_root apt-get update -qq
        apt_updated=1
    fi
    log "installing $1"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

# wait_for NAME LOGFILE COMMAND...: polls COMMAND until it succeeds or WAIT_SECONDS pass.
wait_for() {
    local name=$1 logfile=$2
    shift 2
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die "$name did not answer within ${WAIT_SECONDS}s" "$logfile"
        fi
        sleep 0.5
    done
    log "$name is up"
}

postgres_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
redis_up() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }
nats_up() { timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222'; }

start_postgres() {
    if postgres_up; then
        log "postgres already up"
        return
    fi
    if ! command -v pg_ctlcluster >/dev/null || [[ -z $(ls /etc/postgresql 2>/dev/null) ]]; then
        apt_install postgresql
    fi
    local version
    version=$(ls /etc/postgresql)
    log "starting postgres $version"
    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
        || log "pg_ctlcluster returned non-zero (maybe already starting); waiting anyway"
    wait_for postgres "/var/log/postgresql/postgresql-${version}-main.log" postgres_up
}

start_redis() {
    if command -v redis-cli >/dev/null && redis_up; then
        log "redis already up"
        return
    fi
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server
    fi
    if redis_up; then # the package's own service may have started it
        log "redis already up"
        return
    fi
    as_root mkdir -p /var/lib/redis /var/log/redis
    log "starting redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for redis /var/log/redis/ci.log redis_up
}

start_nats() {
    if nats_up; then
        log "nats already up"
        return
    fi
    if [[ ! -x /usr/sbin/nats-server ]]; then
        apt_install nats-server
    fi
    as_root mkdir -p /var/lib/nats-server
    log "starting nats (JetStream)"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for nats /var/log/nats-server.log nats_up
}

start_postgres
start_redis
start_nats
log "all up: postgres 127.0.0.1:5432, redis 127.0.0.1:6379, nats 127.0.0.1:4222"
