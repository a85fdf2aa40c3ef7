#!/usr/bin/env bash
# Tools only the tests need (called by scripts/test.sh, never by npm start): Debian's chromium
# for the browser tests (driven by the playwright-core devDependency) and firebase-tools for the
# official Firebase Auth emulator, installed once into the machine-wide tools cache.
# Idempotent; about a second when everything is there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

FIREBASE_TOOLS_VERSION=15.34.2 # npm: firebase-tools (the Auth emulator needs no Java)

# ---------------------------------------------------------------------------
step "chromium (Debian) for the browser tests"
apt_packages chromium

# ---------------------------------------------------------------------------
step "playwright-core (devDependency)"
if [[ -f "$ROOT/node_modules/playwright-core/package.json" ]]; then
  done_step "$(node -p "require('$ROOT/node_modules/playwright-core/package.json').version")"
else
  echo "setup-test-tools: node_modules/playwright-core is missing; run npm run setup first" >&2
  exit 1
fi

# ---------------------------------------------------------------------------
step "firebase-tools $FIREBASE_TOOLS_VERSION (Firebase Auth emulator)"
dir="$CACHE/firebase-tools-$FIREBASE_TOOLS_VERSION"
if [[ -x "$dir/node_modules/.bin/firebase" ]]; then
  done_step "cached"
else
  echo "    installing into $dir (cold: several minutes)"
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  # --omit=optional: re2 would otherwise try a download, then compile for a long time.
  nice -n 10 npm install --prefix "$dir.partial" --omit=optional --no-audit --no-fund --loglevel=error \
    "firebase-tools@$FIREBASE_TOOLS_VERSION" >/dev/null
  rm -rf "$dir" && mv "$dir.partial" "$dir"
  done_step "installed"
fi
link_tool "$dir/node_modules/.bin/firebase" firebase

echo "setup-test-tools: done in $(($(date +%s) - SETUP_START))s"
