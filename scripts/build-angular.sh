#!/usr/bin/env bash
# Installs and builds the Angular kit (examples/angular) for the browser tests: `npm ci` from
# package-lock.json (the npm registry only), then `ng build`. Each step is skipped when its
# output is newer than its inputs, so a second `make test` costs nothing here.
set -euo pipefail
cd "$(dirname "$0")/../examples/angular"
command -v npm >/dev/null || { echo "npm is not installed: the Angular kit needs Node.js 20.19+ and npm" >&2; exit 1; }
node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)' \
  || { echo "Node.js $(node --version) is too old: Angular 21 needs 20.19 or newer" >&2; exit 1; }
export NG_CLI_ANALYTICS=false

# npm ci rewrites node_modules/.package-lock.json: older than the lock file means out of date.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

built=dist/maintenance-kit/browser/index.html
if [ -f "$built" ] && [ -z "$(find src public angular.json tsconfig.json tsconfig.app.json package-lock.json -newer "$built" -print -quit)" ]; then
  echo "examples/angular: the build is up to date"
  exit 0
fi
npx --no-install ng build
# The output's own files keep the bundler's times; the stamp is the index the check reads.
touch "$built"
