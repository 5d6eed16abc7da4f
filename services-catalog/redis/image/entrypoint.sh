#!/bin/sh
# Entrypoint of service-foundry/redis (busybox sh, runs as user redis, uid 999).
#
# First start on an empty volume: writes /data/redis.conf (mode 0600) with the ACL users
# (the `default` user disabled, the admin $SF_ADMIN_USER with $REDIS_ADMIN_PASSWORD, the
# replication user $SF_REPLICATION_USER with $SF_REPLICATION_PASSWORD allowed only what a
# replica sends), AOF persistence, and for SF_ROLE=replica `replicaof $SF_UPSTREAM_HOST
# $SF_UPSTREAM_PORT`. On any later start the file decides, whatever the environment says:
# sf-redis rewrites it (CONFIG REWRITE) on promote, follow and configure, so a promoted
# replica restarts as a primary. The passwords live only in that file and the container's
# environment, never on a command line.
#
# Redis does not replicate ACL users, so a background loop (`sf-redis sync-users`, once a
# second) copies the binding users of the primary onto each replica: a user bound before
# a failover can log in to the promoted replica.
#
# Arguments starting with "-" are passed to redis-server; any other command is run instead.
set -eu

log() { echo "sf-redis: $*" >&2; }
die() {
  log "$*"
  exit 1
}

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

DATA=/data
CONF=$DATA/redis.conf
SF_ADMIN_USER=${SF_ADMIN_USER:-sf-admin}
SF_ROLE=${SF_ROLE:-primary}
SF_REPLICATION_USER=${SF_REPLICATION_USER:-}
SF_REPLICATION_PASSWORD=${SF_REPLICATION_PASSWORD:-}

# Values go unquoted into redis.conf: each must be one plain word.
check_word() {
  case "$1" in
    "" | *[!A-Za-z0-9_.-]*) die "$2 must be a non-empty word of letters, digits and _ . -" ;;
  esac
}

[ -w "$DATA" ] || die "$DATA is not writable by $(id -un) (uid $(id -u)); a bind-mounted folder must belong to uid 999"
umask 077

write_config() {
  check_word "$SF_ADMIN_USER" SF_ADMIN_USER
  check_word "${REDIS_ADMIN_PASSWORD:-}" "REDIS_ADMIN_PASSWORD (refusing to start without an admin password)"
  if [ -n "$SF_REPLICATION_USER" ]; then
    check_word "$SF_REPLICATION_USER" SF_REPLICATION_USER
    check_word "$SF_REPLICATION_PASSWORD" "SF_REPLICATION_PASSWORD (SF_REPLICATION_USER is set)"
  fi
  case "$SF_ROLE" in
    primary) ;;
    replica)
      [ -n "$SF_REPLICATION_USER" ] || die "SF_REPLICATION_USER is empty: a replica needs the replication login"
      check_word "${SF_UPSTREAM_HOST:-}" SF_UPSTREAM_HOST
      case "${SF_UPSTREAM_PORT:-}" in
        "" | *[!0-9]*) die "SF_UPSTREAM_PORT '${SF_UPSTREAM_PORT:-}' is not a port number" ;;
      esac
      ;;
    *) die "SF_ROLE '$SF_ROLE' is neither primary nor replica" ;;
  esac

  staging=$CONF.init
  {
    echo "# Service Foundry: written by sf-redis-entrypoint on first start, then kept up to"
    echo "# date by CONFIG REWRITE (sf-redis promote/follow/configure, bindings)."
    echo "bind * -::*"
    echo "port 6379"
    echo "protected-mode no"
    echo "daemonize no"
    echo 'logfile ""'
    echo "dir $DATA"
    echo "appendonly yes"
    echo "appendfsync everysec"
    echo "min-replicas-to-write 0"
    echo "min-replicas-max-lag 10"
    # A new replica syncs at once instead of waiting 5 s for others to share the transfer.
    echo "repl-diskless-sync-delay 0"
    # No anonymous access: every client logs in as a named user.
    echo "user default reset"
    echo "user $SF_ADMIN_USER on >$REDIS_ADMIN_PASSWORD ~* &* +@all"
    if [ -n "$SF_REPLICATION_USER" ]; then
      # What a replica sends upstream, plus ACL LIST for sf-redis sync-users.
      echo "user $SF_REPLICATION_USER on >$SF_REPLICATION_PASSWORD resetchannels -@all +ping +psync +sync +replconf +acl|list"
      echo "masteruser $SF_REPLICATION_USER"
      echo "masterauth $SF_REPLICATION_PASSWORD"
    fi
    if [ "$SF_ROLE" = replica ]; then
      echo "replicaof $SF_UPSTREAM_HOST $SF_UPSTREAM_PORT"
    fi
  } > "$staging"
  chmod 0600 "$staging"
  # Renamed into place at the end: an interrupted start leaves no half-written config.
  mv "$staging" "$CONF"
  log "wrote $CONF as $SF_ROLE${SF_REPLICA_NAME:+ ($SF_REPLICA_NAME)}"
}

if [ -s "$CONF" ]; then
  if grep -q '^replicaof ' "$CONF"; then
    log "starting with the existing $CONF as a replica"
  else
    log "starting with the existing $CONF as a primary"
  fi
else
  write_config
fi

# The loop keeps its copy of the environment (it logs in as the admin and the replication
# user); the server itself has no use for the passwords.
(
  said=""
  while :; do
    sleep 1
    if out=$(sf-redis sync-users 2>&1); then
      [ -z "$out" ] || log "$out"
      said=""
    elif [ "$out" != "$said" ]; then
      log "$out"
      said=$out
    fi
  done
) &
unset REDIS_ADMIN_PASSWORD SF_REPLICATION_PASSWORD
exec redis-server "$CONF" "$@"
