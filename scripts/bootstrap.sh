#!/usr/bin/env bash
# Create ./.venv (Python 3.11 preferred, 3.10-3.13 accepted) and install the reactor with its test
# tools into it. Re-installs only when pyproject.toml changed since the last install.
# PYTHON=/path/to/python3.X picks the interpreter; REACTOR_VENV=.venv313 another virtualenv (.ci/run
# runs the suite on a second Python that way; scripts/run.sh and scripts/test.sh honour it too).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${REACTOR_VENV:-.venv}

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3.10 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "chargebee-reactor needs Python 3.10 to 3.13 (3.11 recommended); set PYTHON=/path/to/python3" >&2
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  py=$(pick_python)
  echo "creating $venv with $($py --version)" >&2
  "$py" -m venv "$venv"
fi

stamp=$venv/.reactor-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing chargebee-reactor and its dependencies into $venv (log: $venv/install.log)" >&2
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$venv/bin/python" -m pip install --disable-pip-version-check -e ".[test]"; } >"$venv/install.log" 2>&1; then
    tail -n 30 "$venv/install.log" >&2
    echo "install failed; full log in $venv/install.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
