#!/bin/sh
# Entrypoint of service-foundry/postgres (busybox sh, runs as user postgres).
#
# First start on an empty volume: creates the cluster with the admin password from
# $POSTGRES_PASSWORD, opens it to password (SCRAM) connections from the network, and
# makes the NOLOGIN role sf_owner owning database $SF_DATABASE and its public schema
# (binding users are made members of sf_owner). Then, and on every later start,
# replaces itself with the postmaster so it receives the stop signal directly.
#
# Arguments starting with "-" are passed to postgres (e.g. -c synchronous_commit=on);
# any other command is run instead of postgres (e.g. `psql --version`).
set -eu

log() { echo "sf-postgres: $*" >&2; }
die() { log "$*"; exit 1; }

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

: "${PGDATA:?PGDATA must name the cluster directory}"
SF_DATABASE=${SF_DATABASE:-sf}
case "$SF_DATABASE" in
  "" | [!a-z_]* | *[!a-z0-9_]*) die "SF_DATABASE '$SF_DATABASE' is not a plain lower-case SQL name" ;;
esac

create_cluster() {
  [ -n "${POSTGRES_PASSWORD:-}" ] || die "POSTGRES_PASSWORD is empty: refusing to create a cluster without an admin password"
  case "$POSTGRES_PASSWORD" in
    *"
"*) die "POSTGRES_PASSWORD must not contain a line break" ;;
  esac

  parent=$(dirname "$PGDATA")
  [ -w "$parent" ] || die "$parent is not writable by $(id -un) (uid $(id -u)); a bind-mounted folder must belong to uid 999"

  # Built beside PGDATA and renamed into place at the end, so a start interrupted half
  # way leaves no cluster that looks complete but lacks the roles and database.
  staging="$PGDATA.init"
  rm -rf "$staging"
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

  cat >> "$staging/pg_hba.conf" <<'HBA'

# Service Foundry: password (SCRAM) connections from anywhere; the router and the
# platform's network decide who can reach the port. Replication is for roles with the
# REPLICATION attribute only.
host    all             all             0.0.0.0/0               scram-sha-256
host    all             all             ::/0                    scram-sha-256
host    replication     all             0.0.0.0/0               scram-sha-256
host    replication     all             ::/0                    scram-sha-256
HBA
  cat >> "$staging/postgresql.conf" <<'CONF'

# Service Foundry
listen_addresses = '*'
password_encryption = scram-sha-256
CONF

  # A server on a private unix socket only: nothing outside can connect while the
  # roles are being made.
  pg_ctl -D "$staging" -w -t 60 -s -o "-c listen_addresses='' -c unix_socket_directories='$sockdir'" start
  psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d postgres -v db="$SF_DATABASE" <<'SQL'
CREATE ROLE sf_owner NOLOGIN;
CREATE DATABASE :"db" OWNER sf_owner;
SQL
  psql -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d "$SF_DATABASE" <<'SQL'
ALTER SCHEMA public OWNER TO sf_owner;
SQL
  pg_ctl -D "$staging" -w -t 60 -s -m fast stop

  mv "$staging" "$PGDATA"
  rm -rf "$sockdir"
  trap - EXIT
  log "cluster ready: database $SF_DATABASE owned by sf_owner"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -e "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
    die "$PGDATA is not empty but holds no cluster (no PG_VERSION); not touching it"
  fi
  rmdir "$PGDATA" 2> /dev/null || true
  create_cluster
fi

# The server and its children have no use for the admin password.
unset POSTGRES_PASSWORD
exec postgres -D "$PGDATA" "$@"
