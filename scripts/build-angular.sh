#!/usr/bin/env bash
# Installs and builds the Angular kit for the browser tests, from examples/angular:
#   1. `npm ci` from package-lock.json (the npm registry only): one install for both npm
#      workspaces, the example shop (Angular 21) and kit/ (Angular 20.0.0, the oldest the
#      library supports);
#   2. the library, maintenance-gateway-angular, built by ng-packagr in kit/ with Angular 20.0.0
#      (an app must not be older than the Angular that compiled its libraries), then packed
#      with `npm pack` into kit/dist/maintenance-gateway-angular-VERSION.tgz;
#   3. kit/'s minimal NgModule app, on that tarball installed as `npm install TARBALL` would;
#   4. the shop, on the built package through its `file:` dependency on kit/dist.
# Each step is skipped when its output is newer than its inputs, so a second `make test`
# costs about a second here.
set -euo pipefail
cd "$(dirname "$0")/../examples/angular"
command -v npm >/dev/null || { echo "npm is not installed: the Angular kit needs Node.js 20.19+ and npm" >&2; exit 1; }
node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)' \
  || { echo "Node.js $(node --version) is too old: Angular 20 and 21 need 20.19 or newer" >&2; exit 1; }
export NG_CLI_ANALYTICS=false

# Whether $1 is missing, or older than any of the other paths (files, or files under folders).
stale() {
  local stamp=$1
  shift
  [ ! -e "$stamp" ] || [ -n "$(find "$@" -newer "$stamp" -print -quit)" ]
}

# npm ci rewrites node_modules/.package-lock.json: older than the lock file means out of date.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

library=maintenance-gateway-angular
version=$(node -p "require('./kit/projects/$library/package.json').version")
tarball=kit/dist/$library-$version.tgz
if stale "$tarball" kit/projects/$library kit/angular.json kit/tsconfig.json package-lock.json; then
  (cd kit && npx --no-install ng build $library)
  rm -f kit/dist/$library-*.tgz
  npm pack "./kit/dist/$library" --pack-destination kit/dist --loglevel=error >/dev/null
else
  echo "examples/angular/kit: the library is up to date"
fi

# The minimal app depends on the package as a team gets it, the tarball: unpacked where
# `npm install TARBALL` puts it (npm ci cannot, since the tarball is built after it runs).
installed=kit/node_modules/$library
if stale "$installed/package.json" "$tarball"; then
  rm -rf "$installed"
  mkdir -p "$installed"
  tar -xzf "$tarball" --strip-components=1 -C "$installed"
  touch "$installed/package.json"
fi
minimal=kit/dist/minimal/browser/index.html
if stale "$minimal" kit/projects/minimal kit/angular.json kit/tsconfig.json package-lock.json "$installed/package.json"; then
  (cd kit && npx --no-install ng build minimal)
  touch "$minimal"
else
  echo "examples/angular/kit: the minimal app is up to date"
fi

shop=dist/shop/browser/index.html
if stale "$shop" src public angular.json tsconfig.json tsconfig.app.json package-lock.json "$tarball"; then
  npx --no-install ng build
  # The output's own files keep the bundler's times; the stamp is the index the check reads.
  touch "$shop"
else
  echo "examples/angular: the shop is up to date"
fi
