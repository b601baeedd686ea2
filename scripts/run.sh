#!/usr/bin/env bash
# Run the reactor: web + worker + scheduler. With nothing configured it starts an embedded
# redis-server (data in ./var/) and the local Chargebee sandbox with demo invoices, and records
# both (var/redis.url, var/sandbox.url) for the `reactor` commands run in this directory.
# REACTOR_VENV picks another virtualenv than ./.venv (see scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec "${REACTOR_VENV:-.venv}/bin/reactor" run "$@"
