#!/usr/bin/env bash
# Brings up Service Foundry on this machine (3 nodes, each its own network namespace with
# its own dockerd, etcd member and agent; schedulers, brokers, routers) and walks through what an
# app developer does: provision Postgres, get credentials, connect with psql through the
# router. Leaves the platform running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
sf() { node packages/cli/dist/main.js "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ -f "${SF_HOME:-.sf}/cluster.json" ]; then
  step "sf up: the cluster of an earlier run"
  sf up
else
  step "sf up --etcd-members 3: three isolated nodes, an etcd member in each, schedulers, brokers, routers"
  sf up --etcd-members 3
fi

step "sf marketplace"
sf marketplace

step "sf nodes, sf status: each node its own namespace, address, dockerd and agent"
sf nodes
sf status

name=demo-db
if sf service "$name" >/dev/null 2>&1; then
  step "$name exists from an earlier run; reusing it"
else
  step "sf create-service postgres small $name"
  sf create-service postgres small "$name"
fi
sf service "$name"

step "sf create-service-key $name demo-key (a real Postgres role)"
creds=$(sf create-service-key "$name" demo-key --json)
echo "$creds"
uri=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).uri)' "$creds")
# The key asks psql to verify the server (sslmode=verify-full) against the cluster CA it
# carries (ca_certificate): libpq wants that CA as a file.
ca_file="$(realpath "${SF_HOME:-.sf}")/demo-key-ca.crt"
node -e 'process.stdout.write(JSON.parse(process.argv[1]).ca_certificate)' "$creds" > "$ca_file"
uri="$uri&sslrootcert=$ca_file"

step "psql through the router: create a table, write and read a row"
psql "$uri" -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE IF NOT EXISTS greetings (id serial PRIMARY KEY, said_at timestamptz DEFAULT now(), text text);
INSERT INTO greetings (text) VALUES ('hello from Service Foundry');
SELECT id, text, said_at FROM greetings ORDER BY id DESC LIMIT 3;
SQL

step "Done. Connection string (through the router):"
echo "  $uri"
cat <<EOF_HELP

Try next (sf = node packages/cli/dist/main.js, or npm run sf -- ...):
  sf services                     list instances
  sf service $name               state, replicas, route
  sf service-key $name demo-key  the credentials again
  sf events                       placements, elections
  sf status                       platform processes
  sf delete-service-key $name demo-key; sf delete-service $name
  sf down                         stop the platform (sf down --purge deletes data too)
EOF_HELP
