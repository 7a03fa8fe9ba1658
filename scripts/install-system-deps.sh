#!/usr/bin/env bash
# Installs the Debian packages named on the command line whose commands are missing.
# `make test` asks for chromium (the browser test), curl and gettext-base (envsubst: the stack's
# nginx health check and template); `make bench` for nginx and wrk.
set -euo pipefail

declare -A command_of=([chromium]=chromium [nginx-light]=nginx [wrk]=wrk [curl]=curl [gettext-base]=envsubst)
packages=()
for package in "$@"; do
  command -v "${command_of[$package]:-$package}" >/dev/null 2>&1 || packages+=("$package")
done
[ ${#packages[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${packages[*]}; install them with your system's package manager" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${packages[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
