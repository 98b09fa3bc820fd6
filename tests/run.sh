#!/usr/bin/env bash
# The project's test command: installs the third-party test tools into .tools/
# (a Python virtualenv with moto, the AWS CLI, cfn-lint, paho-mqtt and awsiotsdk;
# MQTT.js under .tools/node), then runs every test in the workspace and the
# browser client's Node tests (web/, its npm dev dependencies into web/node_modules).
# Extra arguments go to `cargo test`.
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

# Debian's chromium, for the browser tests (driven headless by playwright-core).
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/run.sh: installing Debian's chromium for the browser tests" >&2
  sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

node_dir=$tools/node
want_node=$(sha256sum tests/clients/package.json | cut -d' ' -f1)
if [ ! -d "$node_dir/node_modules/mqtt" ] || [ "$(cat "$node_dir/.package-sha256" 2>/dev/null)" != "$want_node" ]; then
  echo "tests/run.sh: installing Node test clients into $node_dir" >&2
  mkdir -p "$node_dir"
  cp tests/clients/package.json "$node_dir/package.json"
  (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error)
  echo "$want_node" > "$node_dir/.package-sha256"
fi
export SW_NODE_MODULES="$PWD/$node_dir/node_modules"

# Tests look here first for moto_server, aws, … and fail loudly if one is missing.
export SW_TOOLS_BIN="$PWD/$venv/bin"
# The functions some tests run under cargo lambda watch (`cargo run -p PACKAGE`).
# Selected alone, a package gets its dependencies' features resolved apart from
# the workspace's, so this is a build of its own (tokio, hyper, the AWS SDK, …);
# done here, no test spends its minutes on it while its stack and browser wait.
# One package per build, as the tests build them: two together would unify their
# features again.
cargo build -q --locked -p backend-example --bins
cargo build -q --locked -p serverless-websockets-authorizer --bins
cargo test --workspace "$@"

# The browser client (web/): its build, type check and Node unit tests (the
# presigner against botocore's vectors, the MQTT codec against mqtt-packet).
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm test)

# The binaries as the README runs them (`cargo run -- local`, `cargo run -p
# client-example`): Cargo resolves their dependencies' features without the tests'
# dev-dependencies (tokio's test-util, …), so those builds differ from the test
# build; doing them here means the first `cargo run` after the tests compiles nothing.
cargo build -q --locked --bin serverless-websockets
cargo build -q --locked -p client-example --bin client-example
