#!/usr/bin/env bash
# The whole test suite: lint, format check, unit and integration tests (the tests start their own
# redis-server on a free port, the Chargebee sandbox and real RQ workers). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/reactor rules check rules.yaml
exec .venv/bin/python -m pytest "$@"
