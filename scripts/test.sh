#!/usr/bin/env bash
# Runs the whole test suite: unit, property and end-to-end tests (a real broker on temporary
# homes, real launched processes). Machine prerequisites are installed here as they become
# needed, never by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
# The escape tests run the whole app-container matrix a second time with the broker as an
# ordinary user; as root, make sure that user exists.
if [ "$(id -u)" = 0 ] && ! id appipc-test >/dev/null 2>&1; then
  useradd --no-create-home --shell /usr/sbin/nologin appipc-test
fi
# The Python client's suite (clients/python, tests/python_client.rs) needs python3; as root on
# Debian, install it when it is missing.
if ! command -v python3 >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-minimal >/dev/null
fi
# Build every binary first: the end-to-end tests install the example packages from them.
cargo build --workspace --bins
cargo test --workspace "$@"
