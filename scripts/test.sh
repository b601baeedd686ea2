#!/usr/bin/env bash
# The whole test suite: lint, format check, unit and integration tests (the tests start their own
# redis-server on a free port, the Chargebee sandbox and real RQ workers). Extra arguments go to pytest.
# REACTOR_VENV picks another virtualenv than ./.venv (see scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
venv=${REACTOR_VENV:-.venv}
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/reactor" rules check rules.yaml
"$venv/bin/reactor" rules test rules.cases.yaml
# The dashboard's browser test drives Debian's chromium through playwright (never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing Debian's chromium for the browser test (apt-get install chromium)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
            || echo "test.sh: could not install chromium; the browser test will be skipped"
    else
        echo "test.sh: no chromium (and not root with apt-get); the browser test will be skipped"
    fi
fi
# The alerting rules are checked and unit-tested with promtool, from Debian's prometheus package.
if ! command -v promtool >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing Debian's prometheus for promtool (apt-get install prometheus)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
            || echo "test.sh: could not install prometheus; the promtool tests will be skipped"
    else
        echo "test.sh: no promtool (and not root with apt-get); the promtool tests will be skipped"
    fi
fi
# Independent tests run side by side (pytest-xdist): each process starts its own redis-server, sandbox
# and workers on free ports. Most of a test's time is spent waiting on processes, so twice as many
# test processes as CPUs (at most 8); REACTOR_TEST_PROCESSES=0 runs them one by one, and a -n of your
# own after the script's name wins.
cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
processes=${REACTOR_TEST_PROCESSES:-$(( cpus * 2 > 8 ? 8 : cpus * 2 ))}
exec "$venv/bin/python" -m pytest -n "$processes" --dist worksteal "$@"
