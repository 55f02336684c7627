#!/usr/bin/env bash
# Runs the whole test suite: unit, property and end-to-end tests (a real broker on temporary
# homes, real launched processes). Machine prerequisites are installed here as they become
# needed, never by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build every binary first: the end-to-end tests install the example packages from them.
cargo build --workspace --bins
cargo test --workspace "$@"
