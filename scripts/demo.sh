#!/usr/bin/env bash
# Builds appipc and runs its demonstration on a temporary home.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
exec ./target/release/appipc demo
