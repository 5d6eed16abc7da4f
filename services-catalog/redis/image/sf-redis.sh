#!/bin/sh
# sf-redis: the readiness check and the replication commands of the catalog's Redis recipe,
# run by the platform's agent with `docker exec` in a running container. Talks to the
# local server over its unix socket (common.sh LOCAL_SOCKET) as the admin user, and to an
# upstream over TLS when the container has the node's certificate (SF_TLS_CA_FILE); the
# password comes from the container's secret file (REDIS_ADMIN_PASSWORD_FILE) to redis-cli
# on its standard input (--askpass, fed by the shell's builtin printf), never on a command
# line or in any process's environment (REDISCLI_AUTH would sit in redis-cli's
# /proc/<pid>/environ while it runs). When the server refuses that password, each login
# is tried once more with the previous one (the file's name + ".previous", when not
# empty): between the agent putting new password files and `rotate-passwords` the server
# still has the old ones. Each command prints a short result and exits 0, or prints the
# reason on stderr and exits non-zero (1: refused or failed, 2: bad usage).
#
#   sf-redis ping                          PONG once the server answers (a replica: once synced)
#   sf-redis role                          primary | replica
#   sf-redis position                      replication offset as a decimal integer
#   sf-redis promote                       REPLICAOF NO ONE (idempotent)
#   sf-redis follow HOST PORT              REPLICAOF HOST PORT (a replica only)
#   sf-redis configure DURABILITY LOCAL_IO async|received, fsync|batched|unsafe
#   sf-redis sync-users                    on a replica: copy the primary's users (see README)
#   sf-redis backup-prepare PATH           a consistent copy of /data in PATH (see README)
#   sf-redis rotate-passwords PHASE        accept-previous | new-only: take on the files' passwords
#   sf-redis session                       role, position and promote read from stdin (see serve_session)
set -eu

ADMIN=${SF_ADMIN_USER:-sf-admin}
# Only ever read from the secret files, never taken from the environment.
ADMIN_PASSWORD=""
ADMIN_PREVIOUS=""
. /usr/local/lib/sf-redis/common.sh
command=${1:-}
fail() {
  echo "sf-redis $command: $*" >&2
  exit 1
}
usage() {
  echo "sf-redis: $*" >&2
  echo "usage: sf-redis ping | role | position | promote | session | follow HOST PORT | configure DURABILITY LOCAL_IO | sync-users | backup-prepare PATH | rotate-passwords accept-previous|new-only" >&2
  exit 2
}
expect_args() {
  [ "$1" -eq "$2" ] || usage "$command takes $2 argument(s), got $1"
}

# The admin password in $ADMIN_PASSWORD, read once per command; fails with the reason.
admin_password() {
  [ -z "${ADMIN_PASSWORD:-}" ] || return 0
  read_secret REDIS_ADMIN_PASSWORD || fail "$REPLY"
  [ -n "$SECRET" ] || fail "no admin password: REDIS_ADMIN_PASSWORD_FILE is not set in the container"
  ADMIN_PASSWORD=$SECRET
}

# The password a running rotation replaces in $ADMIN_PREVIOUS (empty: none); read only
# once the current one was refused, so the readiness probe reads one file as before.
read_admin_previous() {
  [ -z "${ADMIN_PREVIOUS:-}" ] || return 0
  read_previous_secret REDIS_ADMIN_PASSWORD || fail "$REPLY"
  ADMIN_PREVIOUS=$SECRET
}

# True when redis-cli's output (stderr first) says the server refused the login: with
# --askpass it reports "AUTH failed: WRONGPASS …" and still sends the command (NOAUTH).
login_refused() {
  case "$1" in
    "AUTH failed"* | WRONGPASS*) return 0 ;;
  esac
  return 1
}

# admin_cli PASSWORD ARGS…: redis-cli on the local socket as the admin, PASSWORD on its
# standard input (the shell's builtin printf: on no command line); stdout and stderr.
admin_cli() {
  local password=$1
  shift
  printf '%s\n' "$password" | redis-cli --askpass --user "$ADMIN" -s "$LOCAL_SOCKET" "$@" 2>&1
}

# One command to the local server as the admin, with the previous password when the
# current one is refused; redis-cli exits 0 even on an error reply, so replies starting
# with ERR/WRONGPASS/NOPERM... are failures too.
local_redis() {
  admin_password || exit 1
  reply=$(admin_cli "$ADMIN_PASSWORD" "$@") || fail "redis-cli $1: $reply"
  if login_refused "$reply" && read_admin_previous && [ -n "$ADMIN_PREVIOUS" ]; then
    reply=$(admin_cli "$ADMIN_PREVIOUS" "$@") || fail "redis-cli $1: $reply"
  fi
  case "$reply" in
    ERR* | WRONGPASS* | NOPERM* | NOAUTH* | LOADING* | "Could not connect"* | "Error:"* | "AUTH failed"*) fail "$1: $reply" ;;
  esac
  printf '%s\n' "$reply"
}

# Prints the value of FIELD from INFO replication.
info_field() {
  local_redis INFO replication | tr -d '\r' | sed -n "s/^$1:\\(.*\\)\$/\\1/p"
}

is_primary() {
  role=$(info_field role)
  case "$role" in
    master) return 0 ;;
    slave) return 1 ;;
    *) fail "unexpected role '$role' in INFO replication" ;;
  esac
}

persist() {
  local_redis CONFIG REWRITE > /dev/null
}

# For commands that log in more than once or not through local_redis: settles which of
# the admin's passwords the server takes, the current file's or else the previous one,
# and puts it first ($ADMIN_PASSWORD; the other in $ADMIN_PREVIOUS).
admin_login() {
  admin_password
  reply=$(admin_cli "$ADMIN_PASSWORD" PING) || fail "redis-cli PING: $reply"
  if login_refused "$reply" && read_admin_previous && [ -n "$ADMIN_PREVIOUS" ]; then
    reply=$(admin_cli "$ADMIN_PREVIOUS" PING) || fail "redis-cli PING: $reply"
    if ! login_refused "$reply"; then
      swap=$ADMIN_PASSWORD
      ADMIN_PASSWORD=$ADMIN_PREVIOUS
      ADMIN_PREVIOUS=$swap
      swap=""
    fi
  fi
  [ "$reply" = PONG ] || fail "cannot log in as $ADMIN: $(printf '%s\n' "$reply" | head -n 1)"
}

# A replica is ready once it has completed its first sync from the primary (a fresh one
# holds nothing yet, and a primary with min-replicas-to-write refuses writes until then)
# and copied the primary's binding users: Redis replicates no ACLs, and a replica promoted
# without them would lock every bound client out, then pass that loss on to the others
# (sync-users copies the primary's users, removals included).
# Later its link may go down, as when the primary is lost: it stays ready, a candidate.
SYNCED_MARKER=/data/.sf-synced

cmd_ping() {
  reply=$(local_redis PING)
  [ "$reply" = PONG ] || fail "PING answered '$reply'"
  if ! is_primary && [ ! -e "$SYNCED_MARKER" ]; then
    [ "$(info_field master_link_status)" = up ] || fail "the replica has not completed its first sync yet"
    copied=$(cmd_sync_users 2>&1) || fail "the replica has not copied the primary's binding users yet: $copied"
    touch "$SYNCED_MARKER"
  fi
  echo PONG
}

cmd_role() {
  if is_primary; then echo primary; else echo replica; fi
}

cmd_position() {
  # PSYNC2 keeps the offset across a promotion, so offsets of all replicas compare. A
  # replica reports what it has processed from its upstream.
  if is_primary; then field=master_repl_offset; else field=slave_repl_offset; fi
  offset=$(info_field "$field")
  case "$offset" in
    "" | *[!0-9]*) fail "no usable $field in INFO replication ('$offset')" ;;
  esac
  echo "$offset"
}

cmd_promote() {
  if is_primary; then
    echo "primary (already; offset $(info_field master_repl_offset))"
    return 0
  fi
  local_redis REPLICAOF NO ONE > /dev/null
  is_primary || fail "still a replica after REPLICAOF NO ONE"
  persist
  echo "primary (promoted; offset $(info_field master_repl_offset))"
}

cmd_follow() {
  host=$1
  port=$2
  case "$host" in
    "" | *[!A-Za-z0-9_.:-]*) usage "HOST '$host' is not a host name or address" ;;
  esac
  case "$port" in
    "" | *[!0-9]*) usage "PORT '$port' is not a port number" ;;
  esac
  [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || usage "PORT $port is out of range"
  if is_primary; then
    fail "this server is a primary; it cannot follow $host:$port (an old primary rejoins on a fresh volume)"
  fi
  local_redis REPLICAOF "$host" "$port" > /dev/null
  persist
  echo "following $host:$port"
}

cmd_configure() {
  durability=$1
  local_io=$2
  # Redis cannot wait for a replica to acknowledge a write. min-replicas-to-write only
  # refuses writes while no replica is connected with a lag under min-replicas-max-lag.
  case "$durability" in
    async) min_replicas=0 ;;
    received) min_replicas=1 ;;
    remote-fsync) usage "DURABILITY remote-fsync: Redis cannot wait for a replica's fsync; use received or async" ;;
    *) usage "DURABILITY '$durability' is not one of async, received" ;;
  esac
  case "$local_io" in
    fsync) appendfsync=always ;;
    batched) appendfsync=everysec ;;
    unsafe) appendfsync=no ;;
    *) usage "LOCAL_IO '$local_io' is not one of fsync, batched, unsafe" ;;
  esac
  # Also on a replica: it keeps the settings for when it is promoted.
  local_redis CONFIG SET appendfsync "$appendfsync" min-replicas-to-write "$min_replicas" min-replicas-max-lag 10 > /dev/null
  persist
  echo "appendfsync=$appendfsync min-replicas-to-write=$min_replicas min-replicas-max-lag=10"
}

# ACL LIST of the upstream $host:$port as the replication user $user, logged in with the
# password $1 (on redis-cli's stdin); stdout and stderr.
upstream_acl_list() {
  # shellcheck disable=SC2046
  printf '%s\n' "$1" | redis-cli --askpass $(remote_tls_options) --user "$user" -h "$host" -p "$port" ACL LIST 2>&1
}

# ACL LIST lines of the users bindings made: all but default, the admin and the replicator.
binding_users() {
  grep '^user ' | grep -v -e '^user default ' -e "^user $ADMIN " -e "^user ${SF_REPLICATION_USER:-default} " | sort
}

cmd_sync_users() {
  # A primary is the source; so is a replica whose link is down (nothing to copy from).
  is_primary && return 0
  [ "$(info_field master_link_status)" = up ] || return 0
  host=$(info_field master_host)
  port=$(info_field master_port)
  user=${SF_REPLICATION_USER:-}
  read_secret SF_REPLICATION_PASSWORD || fail "$REPLY"
  [ -n "$user" ] && [ -n "$SECRET" ] || fail "no replication login (SF_REPLICATION_USER, SF_REPLICATION_PASSWORD_FILE)"
  upstream=$(upstream_acl_list "$SECRET") || fail "ACL LIST on $host:$port: $upstream"
  # The upstream may not have taken on rotated passwords yet.
  if login_refused "$upstream"; then
    read_previous_secret SF_REPLICATION_PASSWORD || fail "$REPLY"
    if [ -n "$SECRET" ]; then
      upstream=$(upstream_acl_list "$SECRET") || fail "ACL LIST on $host:$port: $upstream"
    fi
  fi
  case "$upstream" in
    user\ *) ;;
    *) fail "ACL LIST on $host:$port: $upstream" ;;
  esac
  wanted=$(printf '%s\n' "$upstream" | tr -d '\r' | binding_users)
  have=$(local_redis ACL LIST | tr -d '\r' | binding_users)
  [ "$wanted" = "$have" ] && return 0

  # Rules are words without blanks; ~* and &* must reach redis-cli unglobbed.
  set -f
  printf '%s\n' "$wanted" | while read -r _ name rules; do
    [ -n "$name" ] || continue
    # shellcheck disable=SC2086
    local_redis ACL SETUSER "$name" reset $rules > /dev/null
  done
  set +f
  printf '%s\n' "$have" | while read -r _ name _; do
    [ -n "$name" ] || continue
    printf '%s\n' "$wanted" | grep -q "^user $name " || local_redis ACL DELUSER "$name" > /dev/null
  done
  persist
  echo "users synced from $host:$port ($(printf '%s\n' "$wanted" | grep -c '^user ') binding users)"
}

# The volume, as the entrypoint lays it out: redis.conf, the AOF directory, the RDB file.
DATA=/data

# Prints the value of the configuration parameter $1 (CONFIG GET answers name, then value).
config_value() {
  # Not a pipeline, whose status would be sed's; and busybox sh drops set -e inside $(…),
  # so a failure (already reported by local_redis) is passed on by hand.
  pair=$(local_redis CONFIG GET "$1") || exit 1
  printf '%s\n' "$pair" | tr -d '\r' | sed -n 2p
}

# PATH must lie inside the volume: it is removed first, and its whole content becomes a
# restored volume.
check_backup_path() {
  case "$1" in
    "$DATA"/?*) ;;
    *) usage "PATH '$1' is not inside the volume $DATA" ;;
  esac
  case "$1" in
    *[!A-Za-z0-9/_.-]*) usage "PATH '$1' may only hold letters, digits and / _ . -" ;;
    */ | *//* | */./* | */. | */../* | */..) usage "PATH '$1' is not a plain path (no //, ., .. or trailing /)" ;;
  esac
}

# A snapshot taken the way a replica's full sync takes one (the server forks; the child
# writes the dataset as of the fork), received by redis-cli --rdb, then laid out the way
# this server's configuration loads it on start: with appendonly yes Redis 7 loads only
# the AOF directory (a manifest naming a base RDB and an incr file) and ignores dump.rdb.
cmd_backup_prepare() {
  target=$1
  check_backup_path "$target"
  # redis-cli --rdb below logs in by itself: with whichever password the server takes.
  admin_login
  appendonly=$(config_value appendonly)
  aofdir=$(config_value appenddirname)
  aofname=$(config_value appendfilename)
  rdbname=$(config_value dbfilename)
  for name in "$aofdir" "$aofname" "$rdbname"; do
    case "$name" in
      "" | *[!A-Za-z0-9_.-]*) fail "unexpected file name '$name' in the server's configuration" ;;
    esac
  done
  # Never the live files themselves.
  top=${target#"$DATA"/}
  top=${top%%/*}
  for live in redis.conf "$aofdir" "$rdbname" "${SYNCED_MARKER#"$DATA"/}"; do
    [ "$top" != "$live" ] || usage "PATH '$target' overlaps the live $DATA/$live"
  done
  [ -s "$DATA/redis.conf" ] || fail "$DATA/redis.conf is missing"

  rm -rf "$target" || fail "cannot remove the leftover $target"
  # No half-made copy stays behind to be mistaken for a backup or to fill the volume.
  trap 'rm -rf "$target"' EXIT
  umask 077
  mkdir "$target" || fail "cannot create $target"
  snapshot=$target/.snapshot.rdb
  # As the admin, like every sf-redis command (the password on stdin, not the command line).
  output=$(admin_cli "$ADMIN_PASSWORD" --rdb "$snapshot") ||
    fail "redis-cli --rdb failed: $(printf '%s\n' "$output" | grep -v '^sending REPLCONF' | head -n 2 | tr '\n' ' ')"
  [ "$(head -c 5 "$snapshot" 2> /dev/null)" = REDIS ] ||
    fail "the snapshot is not an RDB file: $(printf '%s\n' "$output" | tail -n 1)"
  bytes=$(wc -c < "$snapshot")

  if [ "$appendonly" = yes ]; then
    {
      mkdir "$target/$aofdir" &&
        mv "$snapshot" "$target/$aofdir/$aofname.1.base.rdb" &&
        : > "$target/$aofdir/$aofname.1.incr.aof" &&
        printf 'file %s seq 1 type b\nfile %s seq 1 type i\n' "$aofname.1.base.rdb" "$aofname.1.incr.aof" \
          > "$target/$aofdir/$aofname.manifest"
    } || fail "cannot lay out $target/$aofdir"
  else
    mv "$snapshot" "$target/$rdbname" || fail "cannot move the snapshot to $target/$rdbname"
  fi
  # The users (passwords hashed after a CONFIG REWRITE) and settings, read in one go:
  # CONFIG REWRITE replaces the file by a rename. Taken on a replica, the copy would follow
  # this one's upstream: a restore is a primary of its own.
  sed -e '/^replicaof /d' -e '/^slaveof /d' "$DATA/redis.conf" > "$target/redis.conf" ||
    fail "cannot copy $DATA/redis.conf"
  trap - EXIT
  echo "snapshot of $DATA in $target ($bytes bytes of RDB, appendonly $appendonly)"
}

# $1 (one line) as one double-quoted word for redis-cli's line parser (sdssplitargs): \\
# and \" escaped, any other byte stands for itself. sed reads the value on its stdin.
cli_quote() {
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

# The SHA-256 (hex) of $1, as Redis keeps ACL passwords: `#<hash>` in ACL SETUSER sets a
# password without its clear text. sha256sum reads the value on its stdin.
password_hash() {
  printf '%s' "$1" | busybox sha256sum | cut -c1-64
}

# The hashes of the passwords user $1 accepts now (ACL GETUSER), sorted, one a line.
user_hashes() {
  # Fails (exit 1, reason on stderr) when the user does not exist: nil prints nothing.
  getuser=$(local_redis ACL GETUSER "$1") || exit 1
  printf '%s\n' "$getuser" | grep -q '^passwords' || fail "no ACL user '$1' on this server"
  printf '%s\n' "$getuser" | tr -d '\r' | sed -n '/^passwords$/,/^commands$/p' | grep -E '^[0-9a-f]{64}$' | sort
}

# The hashes of the passwords $1 (current) and $2 (previous; may be empty), sorted, unique.
wanted_hashes() {
  {
    password_hash "$1"
    [ -z "$2" ] || password_hash "$2"
  } | sort -u
}

# Password rotation (README "Password rotation"): the agent has put the new passwords into
# the secret files and the replaced ones into their ".previous" siblings. accept-previous:
# the admin and the replication user accept both, so whichever a client or a replica
# holds still logs in while the agent goes through every server; masterauth (what this
# server sends upstream when it is or becomes a replica) is the new one. new-only, once
# every server accepts the new passwords: only those. The commands reach redis-cli as
# lines on its standard input (given no arguments it reads them there), passwords quoted
# (AUTH, CONFIG SET masterauth "…") or as hashes (ACL SETUSER … #<sha256>): never on a
# command line; every reply must be OK. ACL SETUSER leaves connections up in Redis 7.0: a
# linked replica stays linked, and sends the new masterauth when it next connects.
# Idempotent: what already holds is not set again (CONFIG REWRITE runs every time).
cmd_rotate_passwords() {
  phase=$1
  case "$phase" in
    accept-previous | new-only) ;;
    *) usage "PHASE '$phase' is not one of accept-previous, new-only" ;;
  esac
  # Logs in with whichever admin password the server takes now (the AUTH line below).
  admin_login
  # What the server is to take on: the files' passwords.
  read_secret REDIS_ADMIN_PASSWORD || fail "$REPLY"
  admin_current=$SECRET
  read_previous_secret REDIS_ADMIN_PASSWORD || fail "$REPLY"
  admin_previous=$SECRET
  repl_user=${SF_REPLICATION_USER:-}
  repl_current=""
  repl_previous=""
  if [ -n "$repl_user" ]; then
    read_secret SF_REPLICATION_PASSWORD || fail "$REPLY"
    repl_current=$SECRET
    read_previous_secret SF_REPLICATION_PASSWORD || fail "$REPLY"
    repl_previous=$SECRET
  fi
  if [ "$phase" = new-only ]; then
    admin_previous=""
    repl_previous=""
  fi
  # Every login reads its password as one line (redis-cli --askpass): a password with a
  # line break would lock sf-redis out once it is the only one, so none is taken on.
  newline='
'
  case "$admin_current$admin_previous$repl_current$repl_previous" in
    *"$newline"*) fail "a password file holds a line break; sf-redis logs in with one line (redis-cli --askpass): nothing changed" ;;
  esac

  script="AUTH \"$(cli_quote "$ADMIN")\" \"$(cli_quote "$ADMIN_PASSWORD")\""
  commands=0
  summary=""
  for who in admin repl; do
    if [ "$who" = admin ]; then
      name=$ADMIN current=$admin_current previous=$admin_previous
    else
      name=$repl_user current=$repl_current previous=$repl_previous
      [ -n "$name" ] && [ -n "$current" ] || continue
    fi
    case "$name" in
      "" | *[!A-Za-z0-9_.-]*) fail "user name '$name' is not a word of letters, digits and _ . -" ;;
    esac
    wanted=$(wanted_hashes "$current" "$previous") || fail "cannot hash the passwords of $name"
    have=$(user_hashes "$name") || exit 1
    if [ "$wanted" != "$have" ]; then
      script="$script
ACL SETUSER $name resetpass$(printf '%s\n' "$wanted" | sed 's/^/ #/' | tr -d '\n')"
      commands=$((commands + 1))
    fi
    count=$(printf '%s\n' "$wanted" | grep -c .)
    [ "$count" -eq 1 ] && noun=password || noun=passwords
    summary="$summary$name accepts $count $noun, "
  done
  if [ -n "$repl_current" ]; then
    # CONFIG GET answers the name, then the value (kept whole: config_value drops CRs).
    masterauth=$(local_redis CONFIG GET masterauth) || exit 1
    if [ "${masterauth#masterauth"$newline"}" != "$repl_current" ]; then
      script="$script
CONFIG SET masterauth \"$(cli_quote "$repl_current")\""
      commands=$((commands + 1))
    fi
    masterauth=""
    summary="${summary}masterauth current, "
  fi
  # Always rewritten: a run that set but could not rewrite leaves nothing to set again.
  script="$script
CONFIG REWRITE"
  # No arguments: redis-cli reads one command a line from its stdin and prints each reply.
  replies=$(printf '%s\n' "$script" | redis-cli -s "$LOCAL_SOCKET" 2>&1) || fail "redis-cli: $replies"
  script=""
  replies=$(printf '%s\n' "$replies" | tr -d '\r' | grep -v '^$')
  expected=OK
  i=0
  while [ "$i" -le "$commands" ]; do
    expected="$expected
OK"
    i=$((i + 1))
  done
  # A run stopped half way leaves some of it set; running it again completes it.
  [ "$replies" = "$expected" ] ||
    fail "refused: $(printf '%s\n' "$replies" | grep -v '^OK$' | head -n 1) (run it again once the cause is fixed)"
  if [ "$commands" -eq 0 ]; then state=unchanged; else state=changed; fi
  echo "$phase: ${summary%, } ($state)"
}

# serve_session's shortcut (sf-pg has one for `position`): none here, every request runs
# its command.
session_shortcut() { return 1; }

# The agent's session (`sf-redis session`): one request per line on stdin, each the name of
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

case "$command" in
  ping | role | position | promote | sync-users)
    expect_args $(($# - 1)) 0
    case "$command" in
      ping) cmd_ping ;;
      role) cmd_role ;;
      position) cmd_position ;;
      promote) cmd_promote ;;
      sync-users) cmd_sync_users ;;
    esac
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
