#!/usr/bin/env bash
# Builds appipc and lays out the example packages as they are installed: each folder under
# examples/ gets a bin/ with the binaries its appipc.toml names, so that
#   appipc install examples/hello
# works (in developer mode: appipc dev-mode on). The binaries come from the Rust crate
# examples/hello (every [[bin]] of examples/hello/Cargo.toml: hello-app, echo-service, …,
# device-service, sensor-client, spellcheck-server, writer-app). examples/fabrikam-sensors
# installs so without its custom capability: its descriptor is a draft until Contoso signs it
# (see its appipc.toml).
#
#   bash scripts/examples.sh            release build (target/release), then the layout
#   bash scripts/examples.sh --debug    debug build (target/debug)
#   APPIPC_BIN_DIR=DIR bash scripts/examples.sh   no build: binaries from DIR (the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = --debug ]; then profile=debug; fi
if [ -n "${APPIPC_BIN_DIR:-}" ]; then
  bins=$APPIPC_BIN_DIR
else
  if [ "$profile" = release ]; then
    cargo build --release --workspace --bins
  else
    cargo build --workspace --bins
  fi
  bins=target/$profile
fi
for manifest in examples/*/appipc.toml; do
  dir=$(dirname "$manifest")
  # Every package path the manifest names under bin/ (executables, entry points, full-trust
  # processes) is a binary of the same name.
  for rel in $(grep -o '"bin/[^"]*"' "$manifest" | tr -d '"' | sort -u); do
    mkdir -p "$dir/$(dirname "$rel")"
    cp -f "$bins/$(basename "$rel")" "$dir/$rel"
  done
  echo "laid out $dir"
done
echo "binaries: $bins (add them to PATH: export PATH=\"$(cd "$bins" && pwd):\$PATH\")"
