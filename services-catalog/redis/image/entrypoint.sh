#!/bin/sh
# Entrypoint of service-foundry/redis (busybox sh, runs as user redis, uid 999).
#
# Passwords come as files named by REDIS_ADMIN_PASSWORD_FILE and SF_REPLICATION_PASSWORD_FILE
# (the platform's agent writes them, mode 0400, before the start); REDIS_ADMIN_PASSWORD and
# SF_REPLICATION_PASSWORD are read only when no file is named (running the image by hand).
#
# First start on an empty volume: writes /data/redis.conf (mode 0600) with the ACL users
# (the `default` user disabled, the admin $SF_ADMIN_USER, the replication user
# $SF_REPLICATION_USER allowed only what a replica sends), AOF persistence, and for
# SF_ROLE=replica `replicaof $SF_UPSTREAM_HOST $SF_UPSTREAM_PORT`. On any later start the
# file decides, whatever the environment says: sf-redis rewrites it (CONFIG REWRITE) on
# promote, follow and configure, so a promoted replica restarts as a primary. Only the
# passwords of the platform's own users come from the files on every start (see
# refresh_platform_users). The passwords live only in their files and that one, never in
# an environment variable or on a command line.
#
# Every start: maxclients = $SF_MAX_CONNECTIONS (the plan's) and `timeout 600` (idle
# clients are closed after 10 minutes) on redis-server's command line, above the file, and
# so are the ports: with the node's certificate (SF_TLS_CERT_FILE, SF_TLS_KEY_FILE,
# SF_TLS_CA_FILE) port 6379 speaks TLS only (`port 0`, `tls-port 6379`), for clients and
# replicas alike, and a replica streams from its upstream over TLS (`tls-replication yes`,
# the upstream's certificate checked against the CA); without them (by hand) 6379 is
# plaintext. Local commands use the unix socket $LOCAL_SOCKET (mode 0700).
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
. /usr/local/lib/sf-redis/common.sh

# Values go unquoted into redis.conf: each must be one plain word.
check_word() {
  case "$1" in
    "" | *[!A-Za-z0-9_.-]*) die "$2 must be a non-empty word of letters, digits and _ . -" ;;
  esac
}

# Each client costs Redis a few kilobytes; the plan sizes their number to its memory (see
# README.md). Redis answers one more with "max number of clients reached" and closes it.
max_clients=${SF_MAX_CONNECTIONS:-10000}
case "$max_clients" in
  "" | 0* | *[!0-9]*) die "SF_MAX_CONNECTIONS '$max_clients' is not a positive number" ;;
esac
[ "${#max_clients}" -le 6 ] && [ "$max_clients" -ge 4 ] && [ "$max_clients" -le 100000 ] ||
  die "SF_MAX_CONNECTIONS $max_clients is outside 4..100000"

[ -w "$DATA" ] || die "$DATA is not writable by $(id -un) (uid $(id -u)); a bind-mounted folder must belong to uid 999"
check_tls || die "$REPLY"
umask 077

# The passwords of the platform's own users from their files, and the ones a running
# rotation replaces (`.previous`, empty when none), each checked to be a plain word.
read_platform_passwords() {
  check_word "$SF_ADMIN_USER" SF_ADMIN_USER
  read_secret REDIS_ADMIN_PASSWORD || die "$REPLY"
  admin_password=$SECRET
  check_word "$admin_password" "REDIS_ADMIN_PASSWORD (refusing to start without an admin password)"
  read_previous_secret REDIS_ADMIN_PASSWORD || die "$REPLY"
  admin_previous=$SECRET
  [ -z "$admin_previous" ] || check_word "$admin_previous" "the previous admin password"
  replication_password=""
  replication_previous=""
  if [ -n "$SF_REPLICATION_USER" ]; then
    check_word "$SF_REPLICATION_USER" SF_REPLICATION_USER
    read_secret SF_REPLICATION_PASSWORD || die "$REPLY"
    replication_password=$SECRET
    check_word "$replication_password" "SF_REPLICATION_PASSWORD (SF_REPLICATION_USER is set)"
    read_previous_secret SF_REPLICATION_PASSWORD || die "$REPLY"
    replication_previous=$SECRET
    [ -z "$replication_previous" ] || check_word "$replication_previous" "the previous replication password"
  fi
}

# redis.conf lines of the platform's own users: the admin, and the replication user with
# what a replica sends upstream plus ACL LIST for sf-redis sync-users.
platform_user_lines() {
  echo "user $SF_ADMIN_USER on >$admin_password${admin_previous:+ >$admin_previous} ~* &* +@all"
  if [ -n "$SF_REPLICATION_USER" ]; then
    echo "user $SF_REPLICATION_USER on >$replication_password${replication_previous:+ >$replication_previous} resetchannels -@all +ping +psync +sync +replconf +acl|list"
    echo "masteruser $SF_REPLICATION_USER"
    echo "masterauth $replication_password"
  fi
}

write_config() {
  read_platform_passwords
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
    platform_user_lines
    if [ "$SF_ROLE" = replica ]; then
      echo "replicaof $SF_UPSTREAM_HOST $SF_UPSTREAM_PORT"
    fi
  } > "$staging"
  chmod 0600 "$staging"
  # Renamed into place at the end: an interrupted start leaves no half-written config.
  mv "$staging" "$CONF"
  log "wrote $CONF as $SF_ROLE${SF_REPLICA_NAME:+ ($SF_REPLICA_NAME)}"
}

# On a start with an existing redis.conf, the platform's own users (the admin and the
# replication user) and masterauth take the passwords of the files, and the previous ones
# while a rotation runs (`sf-redis rotate-passwords`): a volume restored from a backup taken
# before a rotation, or kept across one while its container was down, holds older ones
# that no sf-redis command could log in with. Binding users are left as they are.
refresh_platform_users() {
  read_platform_passwords
  staging=$CONF.init
  {
    grep -v -e "^user $SF_ADMIN_USER " -e "^user ${SF_REPLICATION_USER:-$SF_ADMIN_USER} " \
      -e '^masteruser ' -e '^masterauth ' "$CONF" || true
    platform_user_lines
  } > "$staging"
  chmod 0600 "$staging"
  mv "$staging" "$CONF"
}

if [ -s "$CONF" ]; then
  if grep -q '^replicaof ' "$CONF"; then
    log "starting with the existing $CONF as a replica"
  else
    log "starting with the existing $CONF as a primary"
  fi
  refresh_platform_users
else
  write_config
fi

# The loop logs in as the admin and the replication user with the passwords of their
# files (sf-redis reads them each time); the server has its own copy in redis.conf.
unset admin_password admin_previous replication_password replication_previous SECRET
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
# Settings on the command line win over the file, which CONFIG REWRITE fills with whatever
# was in force: a container started without TLS after one with it is plaintext again.
if tls_enabled; then
  # tls-auth-clients no: clients and replicas log in with their ACL passwords; the server
  # proves itself with the node's certificate.
  set -- --port 0 --tls-port 6379 --tls-cert-file "$SF_TLS_CERT_FILE" --tls-key-file "$SF_TLS_KEY_FILE" \
    --tls-ca-cert-file "$SF_TLS_CA_FILE" --tls-auth-clients no --tls-replication yes \
    --tls-protocols "TLSv1.2 TLSv1.3" "$@"
  log "TLS on port 6379 for clients and replicas (plaintext refused)"
else
  set -- --port 6379 --tls-port 0 --tls-replication no "$@"
fi
# timeout: an idle client (not a replica, nor a pub/sub subscriber or a blocked client,
# which Redis exempts) is closed after 10 minutes, so leaked connections do not hold
# maxclients slots for ever; client libraries reconnect.
exec redis-server "$CONF" --maxclients "$max_clients" --timeout 600 --unixsocket "$LOCAL_SOCKET" --unixsocketperm 700 "$@"
