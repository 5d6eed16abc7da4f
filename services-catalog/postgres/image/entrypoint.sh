#!/bin/sh
# Entrypoint of service-foundry/postgres (busybox sh, runs as user postgres).
#
# Passwords come as files named by POSTGRES_PASSWORD_FILE and SF_REPLICATION_PASSWORD_FILE
# (the platform's agent writes them, mode 0400, before the start); POSTGRES_PASSWORD and
# SF_REPLICATION_PASSWORD are read only when no file is named (running the image by hand).
#
# First start on an empty volume, by $SF_ROLE:
# - primary (or unset): creates the cluster with the admin password, opens it to password
#   (SCRAM) connections from the network (the admin and members of sf_app to database
#   $SF_DATABASE only, replication for replication roles), turns on WAL streaming, makes
#   the replication role $SF_REPLICATION_USER, the NOLOGIN role sf_app that owns the app's
#   objects (binding users are its members) and database $SF_DATABASE owned by postgres.
# - replica: clones $SF_UPSTREAM_HOST:$SF_UPSTREAM_PORT with pg_basebackup (waiting for
#   it to answer, up to $SF_CLONE_TIMEOUT_S seconds) and becomes its hot standby.
# Both are built beside $PGDATA and renamed into place at the end. On any later start the
# data directory decides (standby.signal = standby), whatever the environment says: a
# promoted replica restarts as a primary, and a volume restored from `sf-pg
# backup-prepare` (a pg_basebackup with its WAL and backup_label) recovers to the end of
# the backup and starts as a primary. Then the script replaces itself with the
# postmaster so it receives the stop signal directly, with the connection limits
# (max_connections = $SF_MAX_CONNECTIONS, the plan's; authentication_timeout 10 s) on its
# command line, above anything in the configuration files.
#
# TLS (common.sh, README.md "TLS"): with SF_TLS_CERT_FILE, SF_TLS_KEY_FILE and
# SF_TLS_CA_FILE the server serves TLS with that certificate (ssl=on on its command line),
# pg_hba.conf allows replication over TLS only (hostssl) and clients too unless
# SF_TLS_CLIENTS=optional, and a standby clones and streams with sslmode
# $SF_TLS_PEER_VERIFY (verify-full by default) against the CA.
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
  # pg_hba.conf keywords, and the databases binding users must never reach.
  all | sameuser | samerole | samegroup | replication | postgres | template0 | template1)
    die "SF_DATABASE '$SF_DATABASE' is reserved" ;;
esac
SF_ROLE=${SF_ROLE:-primary}
SF_REPLICA_NAME=${SF_REPLICA_NAME:-}
SF_REPLICATION_USER=${SF_REPLICATION_USER:-}
[ -z "$SF_REPLICA_NAME" ] || check_replica_name "$SF_REPLICA_NAME" || die "$REPLY"
[ -z "$SF_REPLICATION_USER" ] || check_sql_name "$SF_REPLICATION_USER" SF_REPLICATION_USER || die "$REPLY"
read_secret SF_REPLICATION_PASSWORD || die "$REPLY"
replication_password=$SECRET
check_tls || die "$REPLY"

# Connection limits: each connection is a process of its own, so the plan sizes their
# number to its memory (see README.md). The reserved slots keep the platform's own
# sessions (as postgres) possible when clients hold every other one.
reserved_connections=3
max_connections=${SF_MAX_CONNECTIONS:-100}
case "$max_connections" in
  "" | 0* | *[!0-9]*) die "SF_MAX_CONNECTIONS '$max_connections' is not a positive number" ;;
esac
[ "${#max_connections}" -le 5 ] && [ "$max_connections" -ge $((reserved_connections + 5)) ] &&
  [ "$max_connections" -le 10000 ] ||
  die "SF_MAX_CONNECTIONS $max_connections is outside $((reserved_connections + 5))..10000"

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
  read_secret POSTGRES_PASSWORD || die "$REPLY"
  admin_password=$SECRET
  [ -n "$admin_password" ] || die "POSTGRES_PASSWORD is empty: refusing to create a cluster without an admin password"
  if [ -n "$SF_REPLICATION_USER" ] && [ -z "$replication_password" ]; then
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
  printf '%s\n' "$admin_password" > "$pwfile"
  log "creating the cluster in $PGDATA"
  # 1 MiB WAL segments instead of 16: a planned relocation's last copy, taken while the
  # service is stopped, holds the segment in use whole, so the segment's size is part of
  # every relocation's downtime. Fixed for the cluster's life (clones inherit it).
  initdb -D "$staging" --locale=C --encoding=UTF8 -U postgres --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --wal-segsize=1 > /dev/null
  rm -f "$pwfile"

  # The whole file, replacing initdb's (common.sh write_hba; written again on every start):
  # SCRAM passwords over the network, TLS for replication always and for clients unless the
  # plan says optional; the replication role can open no database (CONNECT is revoked).
  write_hba "$staging/pg_hba.conf" "$SF_DATABASE"
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
# A standby whose primary went away (restarted, killed by its self-fence) tries again
# after 1 s instead of PostgreSQL's 5 s: under a synchronous durability every commit on
# the restarted primary waits for that reconnection.
wal_retrieve_retry_interval = 1s
hot_standby = on
wal_log_hints = on
# Also on the postmaster's command line (the plan's values win over ALTER SYSTEM); here
# for a cluster started by hand with pg_ctl.
superuser_reserved_connections = 3
authentication_timeout = 10s
include_if_exists = 'sf-node.conf'
CONF
  write_node_conf "$staging"

  # A server on a private unix socket only: nothing outside can connect while the
  # roles are being made.
  pg_ctl -D "$staging" -w -t 60 -s -o "-c listen_addresses='' -c unix_socket_directories='$sockdir'" start
  # The database belongs to postgres, not to a role bindings can reach: no binding can
  # drop or rename it or change its settings (ALTER DATABASE … SET). sf_app owns what the
  # app creates; every binding user is a member working as sf_app (SET role), so all keys
  # share the data and a deleted key leaves it. No role but postgres may connect to any
  # other database, nor create schemas or extensions here.
  psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d postgres -v db="$SF_DATABASE" << 'SQL'
CREATE ROLE sf_app NOLOGIN;
CREATE DATABASE :"db" OWNER postgres;
REVOKE ALL ON DATABASE postgres, template0, template1, :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO sf_app;
SQL
  psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d "$SF_DATABASE" << 'SQL'
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO sf_app;
SQL
  if [ -n "$SF_REPLICATION_USER" ]; then
    # The password reaches psql through its own environment only, never a command line.
    SF_REPLICATION_PASSWORD=$replication_password \
      psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d postgres -v ruser="$SF_REPLICATION_USER" << 'SQL'
\getenv rpass SF_REPLICATION_PASSWORD
CREATE ROLE :"ruser" WITH REPLICATION LOGIN PASSWORD :'rpass';
SQL
  fi
  pg_ctl -D "$staging" -w -t 60 -s -m fast stop

  mv "$staging" "$PGDATA"
  rm -rf "$sockdir"
  trap - EXIT
  log "cluster ready: database $SF_DATABASE, app role sf_app${SF_REPLICATION_USER:+, replication role $SF_REPLICATION_USER}"
}

clone_replica() {
  host=${SF_UPSTREAM_HOST:-}
  port=${SF_UPSTREAM_PORT:-}
  check_host "$host" SF_UPSTREAM_HOST || die "$REPLY"
  check_port "$port" SF_UPSTREAM_PORT || die "$REPLY"
  [ -n "$SF_REPLICATION_USER" ] || die "SF_REPLICATION_USER is empty: a replica needs the replication login"
  [ -n "$replication_password" ] || die "SF_REPLICATION_PASSWORD is empty: a replica needs the replication login"
  [ -n "$SF_REPLICA_NAME" ] || die "SF_REPLICA_NAME is empty: a replica needs a name (its application_name upstream)"
  timeout=${SF_CLONE_TIMEOUT_S:-300}
  case "$timeout" in
    "" | *[!0-9]*) die "SF_CLONE_TIMEOUT_S '$timeout' is not a number of seconds" ;;
  esac

  prepare_staging
  umask 077
  passfile=$(mktemp)
  trap 'rm -f "$passfile"' EXIT
  write_passfile "$passfile" "$SF_REPLICATION_USER" "$replication_password"

  # The clone's connection is checked like the stream after it (replication_tls_options).
  if tls_enabled; then
    export PGSSLMODE="${SF_TLS_PEER_VERIFY:-verify-full}" PGSSLROOTCERT="$SF_TLS_CA_FILE"
  fi
  log "cloning $host:$port as $SF_REPLICA_NAME (waiting up to ${timeout}s for it to answer${PGSSLMODE:+, TLS $PGSSLMODE})"
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

  unset PGSSLMODE PGSSLROOTCERT
  # Streams with a password file on the volume rather than a password in
  # postgresql.auto.conf (which a clone of this standby would copy and SHOW displays).
  write_passfile "$staging/$REPLICATION_PASSFILE" "$SF_REPLICATION_USER" "$replication_password"
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
# Who may connect how follows this container's TLS settings, whatever an older image, a
# restored backup or the previous start left.
write_hba "$PGDATA/pg_hba.conf" "$SF_DATABASE"
# A standby's stream to its upstream likewise: the TLS options of its primary_conninfo are
# this container's (an older image's standby streamed without them).
auto_conf="$PGDATA/postgresql.auto.conf"
if [ -e "$PGDATA/standby.signal" ] && grep -q "^primary_conninfo = '" "$auto_conf" 2> /dev/null; then
  sed -i -e "/^primary_conninfo = '/{s/ sslmode=[^ ']*//g; s/ sslrootcert=[^ ']*//g; s|'\$|$(replication_tls_options)'|}" \
    "$auto_conf" || die "cannot update primary_conninfo in $auto_conf"
fi
if tls_enabled; then
  # On the command line, above ALTER SYSTEM: nothing a session can do turns TLS off.
  set -- -c ssl=on -c "ssl_cert_file=$SF_TLS_CERT_FILE" -c "ssl_key_file=$SF_TLS_KEY_FILE" \
    -c ssl_min_protocol_version=TLSv1.2 "$@"
  log "TLS on: clients ${SF_TLS_CLIENTS:-required}, replication required (standbys check their upstream: ${SF_TLS_PEER_VERIFY:-verify-full})"
fi

# The same limit in postgresql.conf as on the command line (which wins either way): else
# every reload logs that max_connections "cannot be changed without restarting the server"
# and that the configuration file "contains errors".
sed -i -e "s/^max_connections = .*/max_connections = $max_connections/" "$PGDATA/postgresql.conf" ||
  die "cannot write max_connections into $PGDATA/postgresql.conf"

# The server and its children have no use for the passwords (nor for the platform's
# client options: the WAL receiver is a libpq client too).
unset POSTGRES_PASSWORD SF_REPLICATION_PASSWORD admin_password replication_password SECRET PGOPTIONS
exec postgres -D "$PGDATA" -c max_connections="$max_connections" \
  -c superuser_reserved_connections="$reserved_connections" -c authentication_timeout=10s "$@"
