#!/bin/sh
# Entrypoint of service-foundry/postgres (busybox sh, runs as user postgres).
#
# First start on an empty volume, by $SF_ROLE:
# - primary (or unset): creates the cluster with the admin password from
#   $POSTGRES_PASSWORD, opens it to password (SCRAM) connections and replication from the
#   network, turns on WAL streaming, makes the replication role $SF_REPLICATION_USER and
#   the NOLOGIN role sf_owner owning database $SF_DATABASE and its public schema
#   (binding users are made members of sf_owner).
# - replica: clones $SF_UPSTREAM_HOST:$SF_UPSTREAM_PORT with pg_basebackup (waiting for
#   it to answer, up to $SF_CLONE_TIMEOUT_S seconds) and becomes its hot standby.
# Both are built beside $PGDATA and renamed into place at the end. On any later start the
# data directory decides (standby.signal = standby), whatever the environment says: a
# promoted replica restarts as a primary, and a volume restored from `sf-pg
# backup-prepare` (a pg_basebackup with its WAL and backup_label) recovers to the end of
# the backup and starts as a primary. Then the script replaces itself with the
# postmaster so it receives the stop signal directly.
#
# Arguments starting with "-" are passed to postgres (e.g. -c synchronous_commit=on);
# any other command is run instead of postgres (e.g. `psql --version`).
set -eu

log() { echo "sf-postgres: $*" >&2; }
die() {
  log "$*"
  exit 1
}

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

: "${PGDATA:?PGDATA must name the cluster directory}"
. /usr/local/lib/sf-pg/common.sh
check_pgdata || die "$REPLY"
SF_DATABASE=${SF_DATABASE:-sf}
case "$SF_DATABASE" in
  "" | [!a-z_]* | *[!a-z0-9_]*) die "SF_DATABASE '$SF_DATABASE' is not a plain lower-case SQL name" ;;
esac
SF_ROLE=${SF_ROLE:-primary}
SF_REPLICA_NAME=${SF_REPLICA_NAME:-}
SF_REPLICATION_USER=${SF_REPLICATION_USER:-}
SF_REPLICATION_PASSWORD=${SF_REPLICATION_PASSWORD:-}
[ -z "$SF_REPLICA_NAME" ] || check_replica_name "$SF_REPLICA_NAME" || die "$REPLY"
[ -z "$SF_REPLICATION_USER" ] || check_sql_name "$SF_REPLICATION_USER" SF_REPLICATION_USER || die "$REPLY"
case "$SF_REPLICATION_PASSWORD" in
  *"
"*) die "SF_REPLICATION_PASSWORD must not contain a line break" ;;
esac

parent=$(dirname "$PGDATA")
staging="$PGDATA.init"

# Settings of this server alone, kept out of postgresql.conf because a clone copies that.
write_node_conf() {
  if [ -n "$SF_REPLICA_NAME" ]; then
    printf "cluster_name = '%s'\n" "$SF_REPLICA_NAME" > "$1/sf-node.conf"
  else
    : > "$1/sf-node.conf"
  fi
}

prepare_staging() {
  [ -w "$parent" ] || die "$parent is not writable by $(id -un) (uid $(id -u)); a bind-mounted folder must belong to uid 999"
  rm -rf "$staging"
}

create_cluster() {
  [ -n "${POSTGRES_PASSWORD:-}" ] || die "POSTGRES_PASSWORD is empty: refusing to create a cluster without an admin password"
  case "$POSTGRES_PASSWORD" in
    *"
"*) die "POSTGRES_PASSWORD must not contain a line break" ;;
  esac
  if [ -n "$SF_REPLICATION_USER" ] && [ -z "$SF_REPLICATION_PASSWORD" ]; then
    die "SF_REPLICATION_USER is set but SF_REPLICATION_PASSWORD is empty"
  fi

  # A start interrupted half way leaves no cluster that looks complete but lacks the
  # roles and database.
  prepare_staging
  mkdir -p "$staging"
  chmod 0700 "$staging"

  umask 077
  pwfile=$(mktemp)
  sockdir=$(mktemp -d)
  trap 'rm -f "$pwfile"; rm -rf "$sockdir"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  log "creating the cluster in $PGDATA"
  initdb -D "$staging" --locale=C --encoding=UTF8 -U postgres --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 > /dev/null
  rm -f "$pwfile"

  cat >> "$staging/pg_hba.conf" << 'HBA'

# Service Foundry: password (SCRAM) connections from anywhere; the router and the
# platform's network decide who can reach the port. Replication is for roles with the
# REPLICATION attribute only.
host    all             all             0.0.0.0/0               scram-sha-256
host    all             all             ::/0                    scram-sha-256
host    replication     all             0.0.0.0/0               scram-sha-256
host    replication     all             ::/0                    scram-sha-256
HBA
  # Copied to every clone, so standbys stream and serve reads with the same settings.
  # wal_keep_size lets a standby that was briefly away catch up without a slot (a slot
  # of a dead standby would hold WAL until the disk fills); wal_log_hints keeps pg_rewind
  # possible for rejoining an old primary.
  cat >> "$staging/postgresql.conf" << 'CONF'

# Service Foundry
listen_addresses = '*'
password_encryption = scram-sha-256
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
wal_log_hints = on
include_if_exists = 'sf-node.conf'
CONF
  write_node_conf "$staging"

  # A server on a private unix socket only: nothing outside can connect while the
  # roles are being made.
  pg_ctl -D "$staging" -w -t 60 -s -o "-c listen_addresses='' -c unix_socket_directories='$sockdir'" start
  psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d postgres -v db="$SF_DATABASE" << 'SQL'
CREATE ROLE sf_owner NOLOGIN;
CREATE DATABASE :"db" OWNER sf_owner;
SQL
  psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d "$SF_DATABASE" << 'SQL'
ALTER SCHEMA public OWNER TO sf_owner;
SQL
  if [ -n "$SF_REPLICATION_USER" ]; then
    # The password travels through the environment, never on a command line.
    psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d postgres -v ruser="$SF_REPLICATION_USER" << 'SQL'
\getenv rpass SF_REPLICATION_PASSWORD
CREATE ROLE :"ruser" WITH REPLICATION LOGIN PASSWORD :'rpass';
SQL
  fi
  pg_ctl -D "$staging" -w -t 60 -s -m fast stop

  mv "$staging" "$PGDATA"
  rm -rf "$sockdir"
  trap - EXIT
  log "cluster ready: database $SF_DATABASE owned by sf_owner${SF_REPLICATION_USER:+, replication role $SF_REPLICATION_USER}"
}

clone_replica() {
  host=${SF_UPSTREAM_HOST:-}
  port=${SF_UPSTREAM_PORT:-}
  check_host "$host" SF_UPSTREAM_HOST || die "$REPLY"
  check_port "$port" SF_UPSTREAM_PORT || die "$REPLY"
  [ -n "$SF_REPLICATION_USER" ] || die "SF_REPLICATION_USER is empty: a replica needs the replication login"
  [ -n "$SF_REPLICATION_PASSWORD" ] || die "SF_REPLICATION_PASSWORD is empty: a replica needs the replication login"
  [ -n "$SF_REPLICA_NAME" ] || die "SF_REPLICA_NAME is empty: a replica needs a name (its application_name upstream)"
  timeout=${SF_CLONE_TIMEOUT_S:-300}
  case "$timeout" in
    "" | *[!0-9]*) die "SF_CLONE_TIMEOUT_S '$timeout' is not a number of seconds" ;;
  esac

  prepare_staging
  umask 077
  passfile=$(mktemp)
  trap 'rm -f "$passfile"' EXIT
  write_passfile "$passfile" "$SF_REPLICATION_USER" "$SF_REPLICATION_PASSWORD"

  log "cloning $host:$port as $SF_REPLICA_NAME (waiting up to ${timeout}s for it to answer)"
  started=$(date +%s)
  deadline=$((started + timeout))
  attempt=0
  said=""
  while :; do
    attempt=$((attempt + 1))
    # -c fast: the upstream checkpoints at once instead of spreading it over minutes;
    # no manifest: nothing here verifies the copy with pg_verifybackup.
    if output=$(PGPASSFILE="$passfile" PGCONNECT_TIMEOUT=5 pg_basebackup -h "$host" -p "$port" \
      -U "$SF_REPLICATION_USER" -w -D "$staging" -X stream -R -c fast --no-manifest 2>&1); then
      break
    fi
    rm -rf "$staging"
    reason=$(printf '%s\n' "$output" | head -n 1)
    if [ "$(date +%s)" -ge "$deadline" ]; then
      die "gave up cloning $host:$port after ${timeout}s and $attempt attempts: $reason"
    fi
    # Every new reason, and a reminder now and then, instead of a line a second.
    if [ "$reason" != "$said" ] || [ $((attempt % 20)) -eq 0 ]; then
      log "waiting for upstream $host:$port (attempt $attempt): $reason"
      said=$reason
    fi
    sleep 1
  done

  # Streams with a password file on the volume rather than a password in
  # postgresql.auto.conf (which a clone of this standby would copy and SHOW displays).
  write_passfile "$staging/$REPLICATION_PASSFILE" "$SF_REPLICATION_USER" "$SF_REPLICATION_PASSWORD"
  rm -f "$passfile"
  trap - EXIT
  conninfo=$(replication_conninfo "$host" "$port" "$SF_REPLICATION_USER" "$SF_REPLICA_NAME")
  sed -i '/^primary_conninfo[ \t]*=/d' "$staging/postgresql.auto.conf"
  printf "primary_conninfo = '%s'\n" "$conninfo" >> "$staging/postgresql.auto.conf"
  write_node_conf "$staging"
  [ -e "$staging/standby.signal" ] || die "pg_basebackup -R left no standby.signal"
  mv "$staging" "$PGDATA"
  log "cloned $host:$port in $(($(date +%s) - started))s ($attempt attempts); starting as a hot standby"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -e "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
    die "$PGDATA is not empty but holds no cluster (no PG_VERSION); not touching it"
  fi
  rmdir "$PGDATA" 2> /dev/null || true
  case "$SF_ROLE" in
    primary) create_cluster ;;
    replica) clone_replica ;;
    *) die "SF_ROLE '$SF_ROLE' is neither primary nor replica" ;;
  esac
elif [ -e "$PGDATA/standby.signal" ]; then
  log "starting the existing cluster as a standby (standby.signal)"
else
  log "starting the existing cluster as a primary"
fi
# This container's name, not the one a restored backup (sf-pg backup-prepare) or an older
# start wrote; without a name the file is left as it is.
if [ -n "$SF_REPLICA_NAME" ]; then
  write_node_conf "$PGDATA"
fi

# The server and its children have no use for the passwords.
unset POSTGRES_PASSWORD SF_REPLICATION_PASSWORD
exec postgres -D "$PGDATA" "$@"
