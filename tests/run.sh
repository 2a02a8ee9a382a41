#!/usr/bin/env bash
# Runs the whole test suite: ruff, then pytest. The first run creates .venv and installs the pinned
# test requirements into it (a few minutes); later runs reuse it while the requirement files are
# unchanged. Extra arguments go to pytest (e.g. `bash tests/run.sh -k tokens`).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
# The token picker's browser test (tests/test_picker_browser.py) drives Debian's headless Chromium and fails,
# rather than skips, without it: install it when it is missing and apt can (root on Debian/Ubuntu).
if [ ! -x "${ASTAR_CHROMIUM:-/usr/bin/chromium}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
stamp=.venv/.astar-requirements
wanted=$(cat requirements-test.txt tests/requirements-nodeps.txt)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r tests/requirements-nodeps.txt
  printf '%s' "$wanted" > "$stamp"
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
