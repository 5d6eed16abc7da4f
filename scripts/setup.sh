#!/usr/bin/env bash
# Installs and starts what Service Foundry needs on a Debian/Ubuntu machine, as root.
# Safe to run again: it only installs what is missing and starts dockerd only when no
# Docker Engine answers.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v dockerd >/dev/null || missing+=(docker.io)
# iproute2, iptables and util-linux (nsenter, umount) run the isolated nodes of `sf up`;
# chromium is the real browser the dashboard test drives (playwright-core downloads none).
for pkg in debootstrap postgresql-client postgresql-contrib redis-tools busybox-static iproute2 iptables ca-certificates fence-agents openssl netcat-openbsd curl util-linux haproxy iperf3 chromium; do
  installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    log "missing ${missing[*]}: run this as root (or install them yourself)"
    exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

docker_answers() { timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if ! docker_answers; then
  log "starting dockerd (log: /var/log/sf-dockerd.log)"
  nohup dockerd >/var/log/sf-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker_answers && break
    sleep 0.5
  done
  docker_answers || { log "dockerd did not come up; see /var/log/sf-dockerd.log"; exit 1; }
fi

log "building TypeScript"
npx tsc -b
