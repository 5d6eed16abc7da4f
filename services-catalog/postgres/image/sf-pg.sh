#!/bin/sh
# sf-pg: the replication commands of the catalog's Postgres recipe, run by the platform's
# agent with `docker exec` in a running container. Talks to the local server over its
# unix socket as postgres (trust), so it works as any container user, with search_path
# pinned to pg_catalog, pg_temp (common.sh) and every function schema-qualified: nothing a
# binding user creates can change what these superuser sessions run. Each command prints
# a short result and exits 0, or prints the reason on stderr and exits non-zero
# (1: refused or failed, 2: bad usage).
#
#   sf-pg role                          primary | replica
#   sf-pg position                      WAL position as a decimal integer
#   sf-pg promote                       make this standby the primary (idempotent)
#   sf-pg follow HOST PORT              stream from HOST:PORT (a running standby only)
#   sf-pg configure DURABILITY LOCAL_IO async|received|remote-fsync, fsync|batched|unsafe
#   sf-pg backup-prepare PATH           a consistent copy of the cluster in PATH/pgdata (see README)
#   sf-pg checkpoint                    CHECKPOINT (the catalog's flush before a volume copy)
#   sf-pg rotate-passwords PHASE        accept-previous|new-only: take on the secret files' passwords
#   sf-pg session                       role, position and promote read from stdin (see serve_session)
set -eu

: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
. /usr/local/lib/sf-pg/common.sh

command=${1:-}
fail() {
  echo "sf-pg $command: $*" >&2
  exit 1
}
usage() {
  echo "sf-pg: $*" >&2
  echo "usage: sf-pg role | position | promote | session | follow HOST PORT | configure DURABILITY LOCAL_IO | backup-prepare PATH | checkpoint | rotate-passwords accept-previous|new-only" >&2
  exit 2
}
expect_args() {
  [ "$1" -eq "$2" ] || usage "$command takes $2 argument(s), got $1"
}

# The agent's session (`sf-pg session`): one request per line on stdin, each the name of
# an argument-less command from the list given; one answer line each: its exit code, a
# space, and what it printed on stdout, on one line (its stderr goes to the session's).
# Saves a `docker exec` per position reading and for the promotion: a switchover waits
# on both. Starts with the line "sf-session 1", which tells the agent it is supported.
serve_session() {
  echo "sf-session 1"
  while IFS= read -r request; do
    said=""
    code=2
    case "$request" in
      "" | *[!a-z-]*) echo "session: a request is one command name, got '$request'" >&2 ;;
      *)
        case " $* " in
          *" $request "*)
            if session_shortcut "$request"; then
              said=$REPLY
              code=0
            elif said=$(command=$request && "cmd_$request"); then code=0; else code=$?; fi
            ;;
          *) echo "session: unknown request '$request' (one of: $*)" >&2 ;;
        esac
        ;;
    esac
    printf '%s %s\n' "$code" "$(printf '%s' "$said" | tr '\n' ' ')"
  done
}

# One statement (or a script on stdin), unaligned, tuples only.
query() {
  psql -X -A -t -q -v ON_ERROR_STOP=1 -U postgres -d postgres "$@"
}

in_recovery() {
  recovery=$(query -c 'SELECT pg_catalog.pg_is_in_recovery()') || fail "cannot query the local server"
  [ "$recovery" = t ]
}

# Polls fresh sessions until QUERY prints EXPECTED: pg_reload_conf() only signals the
# postmaster, so the calling session may not see the new values yet.
await_setting() {
  tries=0
  while :; do
    seen=$(query -c "$1") || fail "cannot query the local server"
    [ "$seen" = "$2" ] && return 0
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || fail "the reloaded configuration is not in force after 10 s: expected '$2', got '$seen'"
    sleep 0.1
  done
}

# The replication user: the container's environment first; else the user= of the
# conninfo the standby streams with today (empty on a primary).
replication_user() {
  if [ -n "${SF_REPLICATION_USER:-}" ]; then
    echo "$SF_REPLICATION_USER"
    return 0
  fi
  current=$(query -c 'SHOW primary_conninfo') || fail "cannot query the local server"
  found=
  set -f
  for word in $current; do
    case "$word" in user=*) found=${word#user=} ;; esac
  done
  set +f
  echo "$found"
}

cmd_role() {
  if in_recovery; then echo replica; else echo primary; fi
}

# pg_lsn minus 0/0 is the LSN as a numeric: X/Y becomes X*2^32+Y.
POSITION_SQL="SELECT (CASE WHEN pg_catalog.pg_is_in_recovery()
    THEN greatest(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn())
    ELSE pg_catalog.pg_current_wal_lsn() END - '0/0'::pg_lsn)::numeric(20, 0)"

cmd_position() {
  position=$(query -c "$POSITION_SQL") || fail "cannot query the local server"
  [ -n "$position" ] || fail "the standby has neither received nor replayed any WAL yet"
  echo "$position"
}

# The session's reader of positions: one psql and one server session, fed through FIFOs
# (fd 3 the queries, fd 4 the answers), instead of a psql process and a login per reading:
# ~1 ms a reading instead of ~15 (more under load), and a switchover's decision waits on
# these. Opened on the session's first reading. A reading it cannot answer is taken the
# usual way; once its answers are out of step (psql gone, no end marker) it stays closed.
READER=""
open_reader() {
  trap '' PIPE
  dir=$(mktemp -d) || return 1
  mkfifo "$dir/q" "$dir/a" || {
    rm -rf "$dir"
    return 1
  }
  query <"$dir/q" >"$dir/a" &
  exec 3>"$dir/q" 4<"$dir/a"
  rm -rf "$dir"
  READER=open
}
close_reader() {
  exec 3>&- 4<&-
  READER=closed
}
# serve_session's shortcut: answers `position` through the reader into REPLY, or returns 1.
session_shortcut() {
  [ "$1" = position ] || return 1
  [ "$READER" != closed ] || return 1
  if [ -z "$READER" ]; then
    open_reader || {
      READER=closed
      return 1
    }
  fi
  printf '%s;\n\\echo sf-end\n' "$POSITION_SQL" >&3 || {
    close_reader
    return 1
  }
  REPLY=""
  ended=""
  while IFS= read -r line <&4; do
    if [ "$line" = sf-end ]; then
      ended=1
      break
    fi
    REPLY=$line
  done
  [ -n "$ended" ] || {
    close_reader
    return 1
  }
  case "$REPLY" in
    "" | *[!0-9]*) return 1 ;;
  esac
}

cmd_promote() {
  # One session: pg_promote without its own wait (which looks every 100 ms), then
  # pg_is_in_recovery() every 5 ms for up to 60 s; the old upstream is reset on the way, so
  # a clone of this primary does not inherit it. A concurrent promote makes pg_promote fail
  # with "recovery is not in progress": the outcome asked for.
  said=$(query <<'SQL'
SELECT pg_catalog.pg_is_in_recovery() AS was_standby \gset
\if :was_standby
DO $$
BEGIN
  BEGIN
    PERFORM pg_catalog.pg_promote(false);
  EXCEPTION WHEN object_not_in_prerequisite_state THEN
    NULL;
  END;
  FOR i IN 1..12000 LOOP
    EXIT WHEN NOT pg_catalog.pg_is_in_recovery();
    PERFORM pg_catalog.pg_sleep(0.005);
  END LOOP;
END
$$;
SELECT NOT pg_catalog.pg_is_in_recovery() AS promoted \gset
\if :promoted
ALTER SYSTEM RESET primary_conninfo;
SELECT pg_catalog.pg_reload_conf() AS reloaded \gset
\endif
\endif
SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'standby'
  ELSE (CASE WHEN :'was_standby' THEN 'promoted' ELSE 'already' END) || '; timeline ' ||
    ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int
  END;
SQL
) || fail "cannot promote: ${said:-the local server did not answer}"
  case $said in
    standby) fail "the server is still a standby 60 s after pg_promote" ;;
    *) echo "primary ($said)" ;;
  esac
}

cmd_follow() {
  host=$1
  port=$2
  check_host "$host" HOST || usage "$REPLY"
  check_port "$port" PORT || usage "$REPLY"
  if ! in_recovery; then
    fail "this server is a primary; it cannot follow $host:$port (an old primary rejoins as a fresh clone)"
  fi
  user=$(replication_user) || exit 1
  name=${SF_REPLICA_NAME:-$(query -c 'SHOW cluster_name')}
  check_sql_name "$user" "replication user" || fail "$REPLY (set SF_REPLICATION_USER)"
  check_replica_name "$name" || fail "$REPLY (set SF_REPLICA_NAME)"
  # From the container's secret file (SF_REPLICATION_PASSWORD_FILE), never from the exec's
  # command line or environment.
  read_secret SF_REPLICATION_PASSWORD || fail "$REPLY"
  if [ -n "$SECRET" ]; then
    write_passfile "$PGDATA/$REPLICATION_PASSFILE" "$user" "$SECRET"
  fi
  [ -s "$PGDATA/$REPLICATION_PASSFILE" ] ||
    fail "no replication password: $PGDATA/$REPLICATION_PASSFILE is missing and no SF_REPLICATION_PASSWORD_FILE is given"

  conninfo=$(replication_conninfo "$host" "$port" "$user" "$name")
  # PG 15 restarts the WAL receiver when primary_conninfo changes on reload; with
  # recovery_target_timeline 'latest' (the default) it follows a promoted peer's timeline.
  query -v conninfo="$conninfo" > /dev/null << 'SQL' || fail "ALTER SYSTEM failed"
ALTER SYSTEM SET primary_conninfo = :'conninfo';
SELECT pg_catalog.pg_reload_conf();
SQL
  await_setting 'SHOW primary_conninfo' "$conninfo"
  echo "following $host:$port as $name"
}

cmd_configure() {
  durability=$1
  local_io=$2
  case "$durability" in
    async) standbys='' commit=local ;;
    received) standbys='ANY 1 (*)' commit=remote_write ;;
    remote-fsync) standbys='ANY 1 (*)' commit=on ;;
    *) usage "DURABILITY '$durability' is not one of async, received, remote-fsync" ;;
  esac
  case "$local_io" in
    fsync) fsync=on full_page_writes=on commit_delay=0 ;;
    batched) fsync=on full_page_writes=on commit_delay=1000 ;;
    unsafe) fsync=off full_page_writes=off commit_delay=0 ;;
    *) usage "LOCAL_IO '$local_io' is not one of fsync, batched, unsafe" ;;
  esac
  # Without a remote acknowledgement to wait for, batched and unsafe also stop waiting for
  # the local flush (the WAL writer flushes in the background).
  if [ "$durability" = async ] && [ "$local_io" != fsync ]; then commit=off; fi

  # ALTER SYSTEM also works on a standby: it keeps the settings for when it is promoted.
  query -v standbys="$standbys" -v commit="$commit" -v fsync="$fsync" -v fpw="$full_page_writes" \
    -v delay="$commit_delay" > /dev/null << 'SQL' || fail "ALTER SYSTEM failed"
ALTER SYSTEM SET synchronous_standby_names = :'standbys';
ALTER SYSTEM SET synchronous_commit = :'commit';
ALTER SYSTEM SET fsync = :'fsync';
ALTER SYSTEM SET full_page_writes = :'fpw';
ALTER SYSTEM SET commit_delay = :'delay';
SELECT pg_catalog.pg_reload_conf();
SQL
  expected="synchronous_standby_names='$standbys' synchronous_commit=$commit fsync=$fsync full_page_writes=$full_page_writes commit_delay=$commit_delay"
  await_setting "SELECT pg_catalog.format('synchronous_standby_names=%L synchronous_commit=%s fsync=%s full_page_writes=%s commit_delay=%s',
      pg_catalog.current_setting('synchronous_standby_names'), pg_catalog.current_setting('synchronous_commit'),
      pg_catalog.current_setting('fsync'), pg_catalog.current_setting('full_page_writes'),
      pg_catalog.current_setting('commit_delay'))" "$expected"
  echo "$expected"
}

# PATH must lie inside the volume (the parent of PGDATA) and apart from the live cluster:
# it is removed first, and its whole content becomes a restored volume.
check_backup_path() {
  volume=$(dirname "$PGDATA")
  case "$1" in
    "$volume"/?*) ;;
    *) REPLY="PATH '$1' is not inside the volume $volume" && return 1 ;;
  esac
  case "$1" in
    *[!A-Za-z0-9/_.-]*) REPLY="PATH '$1' may only hold letters, digits and / _ . -" && return 1 ;;
    */ | *//* | */./* | */. | */../* | */..) REPLY="PATH '$1' is not a plain path (no //, ., .. or trailing /)" && return 1 ;;
    "$PGDATA" | "$PGDATA"/* | "$PGDATA.init" | "$PGDATA.init"/*) REPLY="PATH '$1' overlaps the cluster $PGDATA" && return 1 ;;
  esac
}

# pg_basebackup from the local server: a fast checkpoint, then the files, then the WAL
# written meanwhile (-X stream), so the copy recovers to the moment the backup ended.
cmd_backup_prepare() {
  target=$1
  check_pgdata || fail "$REPLY"
  check_backup_path "$target" || usage "$REPLY"
  copy=$target/$(basename "$PGDATA")
  rm -rf "$target" || fail "cannot remove the leftover $target"
  # No half-made copy stays behind to be mistaken for a backup or to fill the volume.
  trap 'rm -rf "$target"' EXIT
  (umask 077 && mkdir "$target") || fail "cannot create $target"
  # Over the local socket as postgres: trust, no password anywhere. pg_basebackup makes the
  # directory with the cluster's own mode (0700) and owner (this user, as the server's).
  output=$(pg_basebackup -U postgres -w -D "$copy" -X stream -c fast --no-manifest -l sf-backup 2>&1) ||
    fail "pg_basebackup failed: $(printf '%s\n' "$output" | grep -v '^pg_basebackup: removing' | head -n 3 | tr '\n' ' ')"
  [ -s "$copy/PG_VERSION" ] && [ -s "$copy/backup_label" ] || fail "pg_basebackup left no PG_VERSION or backup_label in $copy"
  # Taken on a standby, the copy would start as a standby of this one's upstream: a restore
  # is a primary of its own. (pg_basebackup never copies postmaster.pid.)
  rm -f "$copy/standby.signal" "$copy/recovery.signal"
  if [ -f "$copy/postgresql.auto.conf" ]; then
    sed -i '/^primary_conninfo[ \t]*=/d; /^primary_slot_name[ \t]*=/d' "$copy/postgresql.auto.conf" ||
      fail "cannot edit $copy/postgresql.auto.conf"
  fi
  trap - EXIT
  start=$(sed -n 's/^START WAL LOCATION: \([^ ]*\).*/\1/p' "$copy/backup_label")
  echo "backup of $PGDATA in $copy (start WAL $start)"
}

cmd_checkpoint() {
  query -c 'CHECKPOINT' > /dev/null || fail "CHECKPOINT failed"
  echo "checkpoint done"
}

# set_passwords ROLE PASSWORD [ROLE PASSWORD]: each ROLE's password, in one transaction.
# psql's \password computes the SCRAM-SHA-256 verifier in psql itself (a fresh salt each
# time) and sends only `ALTER USER ROLE PASSWORD 'SCRAM-SHA-256$…'`, so the clear password
# never reaches the server, its logs or pg_stat_activity. It prompts for the password;
# with no controlling terminal (docker exec without -t) the prompt reads stdin, fed here by
# the shell's printf builtin: no process's command line or environment holds the password.
# psql runs in a session of its own (busybox setsid: no controlling terminal), so that
# under `docker exec -t` it still reads stdin instead of prompting on the terminal.
# password_encryption is pinned for this session so the verifier is SCRAM whatever the
# server's setting. synchronous_commit=local: the change must not wait for a standby, since
# standbys may be waiting for it to log in (a restored primary whose replicas clone with
# the current replication password); a promoted standby that missed it takes the step
# again (the agent runs it once per role). The prompts go to stderr; only psql's own
# messages are kept.
set_passwords() {
  input=
  pairs=$(($# / 2))
  while [ "$pairs" -gt 0 ]; do
    input="$input$2
$2
"
    # The originals shift out as psql's arguments are appended behind them.
    set -- "$@" -c "\\password $1"
    shift 2
    pairs=$((pairs - 1))
  done
  output=$(printf '%s' "$input" |
    PGOPTIONS="$PGOPTIONS -c password_encryption=scram-sha-256 -c synchronous_commit=local" \
      busybox setsid psql -X -q -1 -v ON_ERROR_STOP=1 -U postgres -d postgres "$@" 2>&1) ||
    fail "cannot set the passwords: $(printf '%s\n' "$output" |
      grep -v -e '^Enter new password for user ' -e '^Enter it again: ' | head -n 3 | tr '\n' ' ')"
}

# sf-pg rotate-passwords PHASE: the agent has put new password files into the running
# container (`admin-password`, `replication-password`; the replaced ones beside them as
# `*.previous`, unused here: sf-pg logs in over the local socket, where postgres is
# trusted). A Postgres role holds exactly one password, so the server cannot accept the
# previous and the new one at once: both phases do the same thing, which makes each step
# idempotent and `new-only` correct on its own. On every role, the replication password
# file in PGDATA gets the current replication password: a running WAL receiver keeps its
# connection, its next connect uses the new one. On the primary, postgres and
# $SF_REPLICATION_USER get the current passwords (the standbys receive them by WAL).
cmd_rotate_passwords() {
  case "$1" in
    accept-previous | new-only) ;;
    *) usage "PHASE '$1' is not one of accept-previous, new-only" ;;
  esac
  if in_recovery; then role=replica; else role=primary; fi
  # The role whose password file a standby streams with (as `follow` finds it); the
  # primary sets the password of $SF_REPLICATION_USER only.
  ruser=${SF_REPLICATION_USER:-}
  if [ "$role" = replica ] && [ -n "${SF_REPLICATION_PASSWORD_FILE:-}" ]; then
    ruser=$(replication_user) || exit 1
    [ -n "$ruser" ] || fail "cannot tell the replication user of this standby (set SF_REPLICATION_USER)"
  fi
  if [ -n "$ruser" ]; then
    check_sql_name "$ruser" "replication user" || fail "$REPLY"
    read_secret SF_REPLICATION_PASSWORD || fail "$REPLY"
    rpass=$SECRET
    [ -n "$rpass" ] || fail "the replication password of $ruser is empty (SF_REPLICATION_PASSWORD_FILE)"
  fi
  rewritten=
  if [ -n "${SF_REPLICATION_PASSWORD_FILE:-}" ] && [ -n "$ruser" ]; then
    write_passfile "$PGDATA/$REPLICATION_PASSFILE" "$ruser" "$rpass" ||
      fail "cannot write $PGDATA/$REPLICATION_PASSFILE"
    rewritten="replication password file rewritten"
  fi
  if [ "$role" = replica ]; then
    echo "replica: ${rewritten:-nothing to rewrite}; role passwords come from the primary"
    return 0
  fi

  read_secret POSTGRES_PASSWORD || fail "$REPLY"
  [ -n "$SECRET" ] || fail "the admin password is empty (POSTGRES_PASSWORD_FILE)"
  if [ -n "$ruser" ]; then
    # Checked first: a failed ALTER would log its statement (the verifier) in the server log.
    exists=$(query -v ruser="$ruser" << 'SQL'
SELECT pg_catalog.count(*) FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) :'ruser';
SQL
) || fail "cannot query the local server"
    [ "$exists" = 1 ] || fail "the replication role $ruser does not exist"
    set_passwords postgres "$SECRET" "$ruser" "$rpass"
  else
    set_passwords postgres "$SECRET"
  fi
  echo "primary: passwords of postgres${ruser:+ and $ruser} set (SCRAM)${rewritten:+; $rewritten}"
}

case "$command" in
  checkpoint)
    expect_args $(($# - 1)) 0
    cmd_checkpoint
    ;;
  role)
    expect_args $(($# - 1)) 0
    cmd_role
    ;;
  position)
    expect_args $(($# - 1)) 0
    cmd_position
    ;;
  promote)
    expect_args $(($# - 1)) 0
    cmd_promote
    ;;
  session)
    expect_args $(($# - 1)) 0
    serve_session role position promote
    ;;
  follow)
    expect_args $(($# - 1)) 2
    cmd_follow "$2" "$3"
    ;;
  configure)
    expect_args $(($# - 1)) 2
    cmd_configure "$2" "$3"
    ;;
  backup-prepare)
    expect_args $(($# - 1)) 1
    cmd_backup_prepare "$2"
    ;;
  rotate-passwords)
    expect_args $(($# - 1)) 1
    cmd_rotate_passwords "$2"
    ;;
  "") usage "no command given" ;;
  *) usage "unknown command '$command'" ;;
esac
