#!/bin/sh
# npm test: lint + format check, type check, then the vitest suite (extra args go to vitest).
set -e
biome ci .
tsc --noEmit
exec vitest run "$@"
