#!/usr/bin/env bash
# Usage: scripts/ensure-packages.sh COMMAND=PACKAGE ...
# Installs the Debian package for each command that is not on PATH yet, so that
# `make test` and `make demo` work on a fresh machine without manual set-up.
set -euo pipefail

missing=()
for pair in "$@"; do
	command_name="${pair%%=*}"
	package_name="${pair#*=}"
	if ! command -v "${command_name}" >/dev/null 2>&1; then
		missing+=("${package_name}")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi

echo "-----> Installing system packages: ${missing[*]}"
sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo " !     Need root (or sudo) to install: ${missing[*]}" >&2
		echo " !     Install them with your package manager, then run make again." >&2
		exit 1
	fi
	sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
