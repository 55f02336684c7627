#!/usr/bin/env bash
# What the connect supervision of a packaged full-trust process costs (docs/performance.md,
# "Packaged full-trust clients"): loop-probe connect timings on the host, unpackaged and as a
# mediumIL application, and into an app container by its in rule; and a local socket's connect
# inside an app container (carried out by its supervisor). Needs `cargo build
# --workspace --bins` (T: the binaries, target/debug by default; N: connects per timing).
set -euo pipefail
T=${T:-$(cd "$(dirname "$0")/.." && pwd)/target/debug}
W=$(mktemp -d)
export APPIPC_HOME=$W/home APPIPC_RUNTIME_DIR=$W/run APPIPC_LOG=warn
PUB="CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH"
mk() { # dir manifest
  mkdir -p "$1/bin"; cp $T/loop-probe "$1/bin/"; printf '%s' "$2" > "$1/appipc.toml"; }
mk $W/a "[package]
name = \"Contoso.FtBench\"
publisher = \"$PUB\"
version = \"1.0.0.1\"

[capabilities]
restricted = [\"runFullTrust\"]

[[application]]
id = \"Tool\"
executable = \"bin/loop-probe\"
trust-level = \"mediumIL\"
"
A=Contoso.FtBench_cvnpggrrsm18p
mk $W/b "[package]
name = \"Contoso.FtBenchS\"
publisher = \"$PUB\"
version = \"1.0.0.1\"

[capabilities]
general = [\"privateNetworkClientServer\"]

[[application]]
id = \"App\"
executable = \"bin/loop-probe\"

[[loopback-rule]]
direction = \"in\"
package-family-name = \"$A\"
"
B=Contoso.FtBenchS_cvnpggrrsm18p
$T/appipc dev-mode on >/dev/null 2>&1
$T/appipc install --yes $W/a >/dev/null 2>&1
$T/appipc install --yes $W/b >/dev/null 2>&1
HP=$((40000 + RANDOM % 5000)); BP=$((HP + 1))
$T/loop-probe serve $HP 600 >/dev/null &
SERVER=$!
$T/appipc launch $B -- serve $BP 600 >/dev/null
sleep 2
N=${N:-2000}
for run in 1 2 3; do
  echo "run $run"
  echo -n "host, unpackaged:    "; $T/loop-probe connects $HP $N
  echo -n "host, full trust:    "; $T/appipc launch --wait "$A!Tool" -- connects $HP $N | grep connects
  echo -n "unix, unpackaged:    "; $T/loop-probe unix-connects $N
  echo -n "unix, full trust:    "; $T/appipc launch --wait "$A!Tool" -- unix-connects $N | grep connects
  echo -n "unix, app container: "; $T/appipc launch --wait $B -- unix-connects $N | grep connects
  echo -n "container, full trust: "; $T/appipc launch --wait "$A!Tool" -- connects $BP 300 | grep connects
done
kill $SERVER
$T/appipc stop --apps >/dev/null 2>&1 || true
rm -rf $W
