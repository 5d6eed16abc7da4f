# Helpers shared by the entrypoint and sf-redis (sourced, busybox sh).

# read_secret NAME: the secret NAME in $SECRET, or return 1 with the reason in $REPLY. The
# platform passes it as a file named by ${NAME}_FILE (mode 0400, written by the agent
# before the start: never an environment variable, so neither `docker inspect` nor
# /proc/*/environ shows it); ${NAME} itself is read only when no file is named, for
# running the image by hand.
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
  return 0
}

# read_previous_secret NAME: the password a running rotation replaces, in $SECRET: the
# content of the file ${NAME}_FILE names with ".previous" appended, which the agent puts
# next to the current one when it rotates the passwords (`sf-redis rotate-passwords`).
# Empty when there is none: an empty file, no such file (containers made before
# rotations existed), or no ${NAME}_FILE (by hand). 1 with the reason in $REPLY when the
# file is there but cannot be read.
read_previous_secret() {
  eval "secret_file=\${${1}_FILE:-}"
  SECRET=""
  [ -n "$secret_file" ] && [ -e "$secret_file.previous" ] || return 0
  if [ ! -f "$secret_file.previous" ] || [ ! -r "$secret_file.previous" ]; then
    REPLY="${1}_FILE.previous names '$secret_file.previous', which is not a readable file"
    return 1
  fi
  SECRET=$(cat "$secret_file.previous")
  return 0
}

# Local commands (sf-redis, the sync loop) reach the server over this unix socket (mode
# 0700, user redis): no TLS handshake for the probes the agent runs several times a second,
# and no password on the network.
LOCAL_SOCKET=/run/redis/redis.sock

# TLS (README.md "TLS"): the platform's agent gives a container the node's certificate,
# its key and the cluster CA as files named by SF_TLS_CERT_FILE, SF_TLS_KEY_FILE and
# SF_TLS_CA_FILE. Without SF_TLS_CERT_FILE the image runs without TLS (by hand only: the
# agent never starts a TLS-capable service without its certificate).
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
  # One port serves clients and replicas (the router forwards that one): Redis cannot
  # speak TLS and plaintext on one port, so a plan cannot make TLS optional.
  case "${SF_TLS_CLIENTS:-required}" in
    required) ;;
    *) REPLY="SF_TLS_CLIENTS '${SF_TLS_CLIENTS}': Redis serves clients and replicas on one TLS port; only required is possible" && return 1 ;;
  esac
}

# redis-cli options for a TLS connection to another server (checked against the cluster CA).
remote_tls_options() {
  if tls_enabled; then
    printf '%s\n' --tls --cacert "$SF_TLS_CA_FILE"
  fi
}
