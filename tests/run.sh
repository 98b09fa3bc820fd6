#!/usr/bin/env bash
# The project's test command: installs the third-party test tools into .tools/
# (a Python virtualenv with moto and the AWS CLI), then runs every test in the
# workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=.tools
venv=$tools/venv
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$want" ]; then
  echo "tests/run.sh: installing test tools into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$venv/.requirements-sha256"
fi

# Tests look here first for moto_server, aws, … and fail loudly if one is missing.
export SW_TOOLS_BIN="$PWD/$venv/bin"
exec cargo test --workspace "$@"
