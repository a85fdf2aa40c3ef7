#!/bin/sh
# npm test: lint + format check, type check, then the vitest suite (extra args go to vitest).
# Ends with one plain "N passed, N failed, N skipped" line, read by CI.
set -e
ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$ROOT"
biome ci .
tsc --noEmit
# The Kubernetes runtime's tests need the cluster toolchain (built once per machine; seconds when
# cached). npm start never needs it, so only the tests provision it.
bash scripts/setup-kubernetes.sh
# Test-only tools: chromium for the browser tests, firebase-tools for the Auth emulator.
bash scripts/setup-test-tools.sh
bash scripts/setup-ansible.sh
mkdir -p .data
report=.data/test-report.json
rm -f "$report"
status=0
vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
if [ -f "$report" ]; then
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' "$report"
fi
exit "$status"
