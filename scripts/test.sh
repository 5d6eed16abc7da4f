#!/usr/bin/env bash
# The whole test suite: lint, unit, integration (real etcd) and end-to-end (real Docker,
# real Postgres, psql through the router). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/setup.sh
npx biome check .
npx tsc -p tsconfig.test.json

# Image builds are cached by tag; building them once here keeps concurrent test files
# from racing to build the same image, and shows the build time on its own.
node packages/cli/dist/main.js images build
shopt -s nullglob
# The slowest end-to-end files first (about 4-8 min each under the suite's load), then the
# rest: with four files at a time, a long file started last would run on alone at the end.
slowest=(e2e/rotate-credentials e2e/backup-restore e2e/explain e2e/failover e2e/switchover e2e/upgrade
  e2e/relocation e2e/isolated-nodes e2e/plan-change e2e/chaos)
files=()
for name in "${slowest[@]}"; do [[ -f $name.test.ts ]] && files+=("$name.test.ts"); done
for file in e2e/*.test.ts packages/*/test/*.test.ts; do
  [[ " ${files[*]} " == *" $file "* ]] || files+=("$file")
done
node --import tsx --test --test-concurrency=4 --test-timeout=900000 "${files[@]}"
echo "test.sh: finished in $(($(date +%s) - start)) s"
