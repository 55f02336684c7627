#!/usr/bin/env bash
# The long version of the fault-injection test (crates/appipc-cli/tests/fault_injection.rs):
# kills the broker (SIGKILL) at random moments of installs, upgrades, removals and file-token
# additions, KILLS times (default 500), and checks the state after every restart (integrity,
# list = store, no staging left, no orphaned app data, empty journal, acknowledged operations
# present). Prints the seed; `APPIPC_CRASH_SEED=<seed> scripts/crash-test.sh` repeats a run.
#
#   scripts/crash-test.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-500}"
cargo build --workspace --bins
APPIPC_CRASH_KILLS="$kills" cargo test -p appipc-cli --test fault_injection \
  random_kills_during_deployments_leave_a_whole_state -- --nocapture 2>&1 \
  | grep -E '^fault injection|panicked|test result'
