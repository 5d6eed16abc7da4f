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

# replication_conninfo HOST PORT USER NAME: primary_conninfo of a standby of HOST:PORT.
replication_conninfo() {
  printf 'host=%s port=%s user=%s passfile=%s application_name=%s connect_timeout=5' \
    "$1" "$2" "$3" "$PGDATA/$REPLICATION_PASSFILE" "$4"
}
