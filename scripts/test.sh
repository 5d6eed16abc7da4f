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
# --test-force-exit: each file's process exits as soon as its tests are done. Node 20 can
# spin forever at 100% CPU in its exit-time handle cleanup (Environment::CleanupHandles)
# after a file's tests have all passed; seen once with packages/router/test/tcp-routes.test.ts,
# which would hold the whole run until CI's limit. process.exit skips that cleanup.
# The second reporter lists the failed tests (file, suites, error) after the TAP stream,
# so the tail of a long log names them.
node --import tsx --test --test-force-exit --test-concurrency=4 --test-timeout=900000 \
  --test-reporter=tap --test-reporter-destination=stdout \
  --test-reporter=./scripts/failed-tests-reporter.mjs --test-reporter-destination=stdout \
  "${files[@]}"
echo "test.sh: finished in $(($(date +%s) - start)) s"
