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
