#!/usr/bin/env bash
# Builds appipc in release mode and runs the benchmarks. They print numbers (a table and one
# JSON line per scenario, with ratios against raw baselines measured in the same run); nothing
# asserts. Each latency benchmark runs under three loads it starts and stops itself (issue 15):
# idle, busy (one spinning process per core) and bursty (1 ms busy / 1 ms asleep per core).
# Extra arguments go to `appipc-bench app-service` (e.g. --iterations 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the comparisons need: dbus (dbus-daemon) and bubblewrap (bwrap).
missing=()
command -v dbus-daemon >/dev/null || missing+=(dbus)
command -v bwrap >/dev/null || missing+=(bubblewrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get install -y -qq "${missing[@]}" || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }; } >/dev/null 2>&1 \
      || echo "could not install ${missing[*]}: those comparisons will be skipped" >&2
  else
    echo "missing Debian packages ${missing[*]} (not root or no apt-get): those comparisons will be skipped" >&2
  fi
fi
cargo build --release --workspace --bins
bench=./target/release/appipc-bench
for load in idle busy bursty; do
  "$bench" app-service --load "$load" "$@"
  "$bench" objects --load "$load"
done
"$bench" launch --load idle
# Broker memory per idle and per open app-service connection at 1 000 and 10 000 (it raises
# its RLIMIT_NOFILE to the hard limit; 10 000 connections need ~10 300 fds).
"$bench" scale --connections 1000,10000
# The broker under floods of non-reading, idle and active clients (issue 12): 3 runs, medians
# (it raises its RLIMIT_NOFILE to the hard limit; ~1 100 fds are needed).
"$bench" flood --runs 3
# Loopback between packages (issue 18): round trip on an installed socket against the same
# within one package, and the cost of a connect.
"$bench" loopback
# RPC endpoints (issue 20): a round trip over an endpoint's channel against a raw seqpacket
# ping-pong, interleaved, under each load.
for load in idle busy bursty; do
  "$bench" rpc --load "$load"
done
