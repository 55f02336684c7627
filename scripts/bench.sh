#!/usr/bin/env bash
# Builds appipc in release mode and runs the benchmarks. They print numbers (a table and a
# JSON line with ratios against raw baselines measured in the same run); nothing asserts.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v dbus-daemon >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dbus >/dev/null
  else
    echo "dbus-daemon is missing (Debian package dbus): the D-Bus comparison will be skipped" >&2
  fi
fi
cargo build --release --workspace --bins
./target/release/appipc-bench app-service "$@"
./target/release/appipc-bench launch
./target/release/appipc-bench objects
# The broker under floods of non-reading, idle and active clients (issue 12): 3 runs, medians
# (it raises its RLIMIT_NOFILE to the hard limit; ~1 100 fds are needed).
./target/release/appipc-bench flood --runs 3
