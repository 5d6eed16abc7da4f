# Helpers shared by the entrypoint and sf-pg (sourced, busybox sh). A check_* function
# returns 1 with the reason in $REPLY; nothing here exits.

# The replication password file, inside the data directory so it moves with it (the
# rename into place, a promotion) and never lands in postgresql.auto.conf.
REPLICATION_PASSFILE=sf-replication.pgpass

# Conninfo values below go unquoted, so every part of them is checked to need no quoting.
check_pgdata() {
  case "$PGDATA" in
    /*) ;;
    *) REPLY="PGDATA '$PGDATA' is not an absolute path" && return 1 ;;
  esac
  case "$PGDATA" in
    *[!A-Za-z0-9/_.-]*) REPLY="PGDATA '$PGDATA' may only hold letters, digits and / _ . -" && return 1 ;;
  esac
}

check_replica_name() {
  case "$1" in
    "" | *[!A-Za-z0-9_.-]*) REPLY="replica name '$1' may only hold letters, digits and _ . -" && return 1 ;;
  esac
  [ "${#1}" -le 63 ] || {
    REPLY="replica name '$1' is longer than 63 characters"
    return 1
  }
}

check_sql_name() {
  case "$1" in
    "" | [!a-z_]* | *[!a-z0-9_]*) REPLY="$2 '$1' is not a plain lower-case SQL name" && return 1 ;;
  esac
  [ "${#1}" -le 63 ] || {
    REPLY="$2 '$1' is longer than 63 characters"
    return 1
  }
}

check_host() {
  case "$1" in
    "" | -* | *[!A-Za-z0-9_.:-]*) REPLY="$2 '$1' is not a host name or IP address" && return 1 ;;
  esac
}

check_port() {
  case "$1" in
    "" | 0* | *[!0-9]*) REPLY="$2 '$1' is not a port number" && return 1 ;;
  esac
  [ "${#1}" -le 5 ] && [ "$1" -le 65535 ] || {
    REPLY="$2 '$1' is not a port number"
    return 1
  }
}

# read_secret NAME: the secret NAME in $SECRET. The platform passes it as a file named by
# ${NAME}_FILE (mode 0400, see README.md: never an environment variable); ${NAME} itself is
# read only when no file is named, for running the image by hand. A line break is refused.
read_secret() {
  eval "secret_file=\${${1}_FILE:-}"
  if [ -n "$secret_file" ]; then
    if [ ! -f "$secret_file" ] || [ ! -r "$secret_file" ]; then
      REPLY="${1}_FILE names '$secret_file', which is not a readable file"
      return 1
    fi
    SECRET=$(cat "$secret_file")
  else
    eval "SECRET=\${${1}:-}"
  fi
  case "$SECRET" in
    *"
"*) REPLY="$1 must not contain a line break" && return 1 ;;
  esac
  return 0
}

# Every psql of the platform (sf-pg, the entrypoint) resolves names in pg_catalog first and
# never in a schema a binding user can create objects in: their functions cannot shadow
# the ones these sessions call, whatever search_path is set on the database.
export PGOPTIONS='-c search_path=pg_catalog,pg_temp'

# write_passfile FILE USER PASSWORD: a libpq password file (mode 0600, or libpq ignores
# it) matching any host, port and database; replaced atomically.
write_passfile() {
  escaped=$(printf '%s' "$3" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')
  (
    umask 077
    printf '*:*:*:%s:%s\n' "$2" "$escaped" > "$1.tmp"
  )
  mv -f "$1.tmp" "$1"
}

# TLS (README.md "TLS"): the platform's agent gives a container the node's certificate,
# its key and the cluster CA as files named by SF_TLS_CERT_FILE, SF_TLS_KEY_FILE and
# SF_TLS_CA_FILE, the plan's client mode in SF_TLS_CLIENTS (required | optional) and how a
# standby checks its upstream in SF_TLS_PEER_VERIFY (verify-full | verify-ca). Without
# SF_TLS_CERT_FILE the image runs without TLS (by hand only: the agent never starts a
# TLS-capable service without its certificate).
tls_enabled() {
  [ -n "${SF_TLS_CERT_FILE:-}" ]
}

# check_tls: the TLS variables are complete and their files readable; 1 with $REPLY otherwise.
check_tls() {
  tls_enabled || return 0
  for var in SF_TLS_CERT_FILE SF_TLS_KEY_FILE SF_TLS_CA_FILE; do
    eval "file=\${$var:-}"
    case "$file" in
      /*) ;;
      *) REPLY="$var '$file' is not an absolute path (TLS needs the certificate, its key and the CA)" && return 1 ;;
    esac
    case "$file" in
      *[!A-Za-z0-9/_.-]*) REPLY="$var '$file' may only hold letters, digits and / _ . -" && return 1 ;;
    esac
    if [ ! -f "$file" ] || [ ! -r "$file" ]; then
      REPLY="$var names '$file', which is not a readable file" && return 1
    fi
  done
  case "${SF_TLS_CLIENTS:-required}" in
    required | optional) ;;
    *) REPLY="SF_TLS_CLIENTS '${SF_TLS_CLIENTS}' is neither required nor optional" && return 1 ;;
  esac
  case "${SF_TLS_PEER_VERIFY:-verify-full}" in
    verify-full | verify-ca) ;;
    *) REPLY="SF_TLS_PEER_VERIFY '${SF_TLS_PEER_VERIFY}' is neither verify-full nor verify-ca" && return 1 ;;
  esac
}

# The libpq options of a standby's connection to its upstream: TLS checked against the
# cluster CA (and, with verify-full, the upstream's address in its certificate).
replication_tls_options() {
  if tls_enabled; then
    printf ' sslmode=%s sslrootcert=%s' "${SF_TLS_PEER_VERIFY:-verify-full}" "$SF_TLS_CA_FILE"
  fi
}

# replication_conninfo HOST PORT USER NAME: primary_conninfo of a standby of HOST:PORT.
replication_conninfo() {
  printf 'host=%s port=%s user=%s passfile=%s application_name=%s connect_timeout=5%s' \
    "$1" "$2" "$3" "$PGDATA/$REPLICATION_PASSFILE" "$4" "$(replication_tls_options)"
}

# write_hba FILE DATABASE: the whole pg_hba.conf (first match decides, no match is a
# refusal). Over the network, a SCRAM password only: the admin; members of sf_app (binding
# users) to DATABASE only; replication for roles with the REPLICATION attribute. With TLS,
# replication lines are hostssl (never in clear), and so are the others unless the plan's
# client mode is optional. The local socket serves the platform's commands run in the
# container (docker exec): postgres only. Rewritten on every start, so the file always
# matches the container's TLS settings (a restored volume, an older image's cluster).
write_hba() {
  clients=host
  replication=host
  if tls_enabled; then
    replication=hostssl
    [ "${SF_TLS_CLIENTS:-required}" = optional ] || clients=hostssl
  fi
  cat > "$1.tmp" << HBA
# Service Foundry (sf-postgres-entrypoint). TYPE DATABASE USER ADDRESS METHOD
local   all             postgres                                trust
local   replication     postgres                                trust
$clients    all             postgres        0.0.0.0/0               scram-sha-256
$clients    all             postgres        ::/0                    scram-sha-256
$clients    $2    +sf_app         0.0.0.0/0               scram-sha-256
$clients    $2    +sf_app         ::/0                    scram-sha-256
$replication    replication     all             0.0.0.0/0               scram-sha-256
$replication    replication     all             ::/0                    scram-sha-256
HBA
  chmod 0600 "$1.tmp"
  mv -f "$1.tmp" "$1"
}
