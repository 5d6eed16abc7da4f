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
files=(packages/*/test/*.test.ts e2e/*.test.ts)
node --import tsx --test --test-concurrency=4 --test-timeout=900000 "${files[@]}"
echo "test.sh: finished in $(($(date +%s) - start)) s"
