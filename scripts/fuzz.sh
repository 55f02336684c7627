#!/usr/bin/env bash
# The fuzz targets of fuzz/ (docs/reliability.md): build, smoke runs for CI, long runs, corpus
# minimisation, and the fuzz crate's own format and lint checks.
#
#   scripts/fuzz.sh smoke [SECONDS]           every target SECONDS (30) on its checked-in
#                                             corpus (AddressSanitizer); fails on any crash,
#                                             timeout or out-of-memory
#   scripts/fuzz.sh long [TARGET...] [-runs N] [-time S]
#                                             N executions (10 000 000) per target, or S
#                                             seconds if that comes first (0: no cap), one
#                                             target after the other, under nice -n 19, no
#                                             sanitizer; a summary line each
#   scripts/fuzz.sh run TARGET [ARGS...]      one target, libFuzzer ARGS passed on
#   scripts/fuzz.sh cmin [TARGET...]          merge fuzz/work/TARGET into fuzz/corpus/TARGET
#                                             and minimise it
#   scripts/fuzz.sh seeds                     regenerate the seed-* inputs (fuzz/gen_seeds.rs)
#   scripts/fuzz.sh check                     cargo fmt --check and clippy of the fuzz crate
#   scripts/fuzz.sh list                      the targets
#
# Every run uses -rss_limit_mb=1024 (bounded memory: an input that makes a target use more
# is a failure) and -timeout=5 (one input may take at most 5 s). New inputs a run finds go to
# fuzz/work/TARGET (not checked in); `cmin` keeps the ones that add coverage. FUZZ_SANITIZER
# (address or none) overrides the build a command uses, FUZZ_NICE (19) the long runs' nice.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ=fuzz
LIMITS=(-rss_limit_mb=1024 -timeout=5)

# The largest input each target tries (libFuzzer -max_len): big enough for its seeds, small
# enough to stay fast.
max_len() {
  case "$1" in
    package_file | package_signed) echo 16384 ;;
    sddl) echo 2048 ;;
    names) echo 512 ;;
    *) echo 4096 ;;
  esac
}

targets() {
  for f in "$FUZZ"/fuzz_targets/*.rs; do basename "$f" .rs; done
}

# nightly if it is installed; else the stable toolchain with its unstable flags unlocked
# (cargo fuzz passes -Z options), which builds the same targets.
toolchain() {
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    CARGO=(cargo +nightly)
  else
    echo "fuzz.sh: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    CARGO=(cargo)
  fi
}

ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
  fi
}

# Smoke runs, `run` and `cmin` use AddressSanitizer builds (fuzz/target): memory errors in the
# unsafe code of dependencies are caught too. Long runs use builds without a sanitizer
# (fuzz/target/plain), several times faster. FUZZ_SANITIZER=address or none chooses for any
# command.
SANITIZER=${FUZZ_SANITIZER:-address}
set_target_dir() {
  if [ "$SANITIZER" = address ]; then TARGET_DIR=$FUZZ/target; else TARGET_DIR=$FUZZ/target/plain; fi
}
set_target_dir

build() {
  ensure_cargo_fuzz
  toolchain
  "${CARGO[@]}" fuzz build --fuzz-dir "$FUZZ" --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" "$@"
}

bin() {
  local b="$TARGET_DIR/x86_64-unknown-linux-gnu/release/$1"
  [ -x "$b" ] || { echo "fuzz.sh: $b not built" >&2; exit 2; }
  echo "$b"
}

# The target's dictionary option, if it has one (fuzz/dict/TARGET.dict).
dict() {
  [ -f "$FUZZ/dict/$1.dict" ] && echo "-dict=$FUZZ/dict/$1.dict" || true
}

# Runs one target: fuzz_one TARGET NEW LOG [libFuzzer args...], with NEW as the folder new
# inputs go to (and which is read first), under "${RUNNER[@]}" (long runs: nice); returns
# libFuzzer's status.
RUNNER=()
fuzz_one() {
  local t=$1 new=$2 log=$3 b
  shift 3
  b=$(bin "$t")
  mkdir -p "$new" "$FUZZ/artifacts/$t"
  "${RUNNER[@]}" "$b" "$new" "$FUZZ/corpus/$t" \
    -artifact_prefix="$FUZZ/artifacts/$t/" -max_len="$(max_len "$t")" "${LIMITS[@]}" \
    $(dict "$t") -print_final_stats=1 "$@" >"$log" 2>&1
}

# One summary line from a run's log and status.
summary() {
  local t=$1 log=$2 rc=$3 secs=$4
  local runs rate rss corpus crash=0 timeout=0 oom=0
  corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[bKMG]b' "$log" | tail -1 | sed 's/corp: //')
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  if grep -q 'ERROR: libFuzzer: timeout' "$log"; then timeout=1
  elif grep -qE 'ERROR: libFuzzer: (out-of-memory|malloc)' "$log"; then oom=1
  elif [ "$rc" -ne 0 ]; then crash=1
  fi
  printf '%-14s executions=%s exec/s=%s crashes=%d timeouts=%d ooms=%d peak_rss=%sMB corpus=%s time=%ss\n' \
    "$t" "${runs:-?}" "${rate:-?}" "$crash" "$timeout" "$oom" "${rss:-?}" "${corpus:-?}" "$secs"
  if [ "$rc" -ne 0 ]; then
    grep -m1 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /' || true
    grep -m1 -E 'Test unit written to' "$log" | sed 's/^/    /' || true
  fi
}

cmd=${1:-smoke}
shift || true
case "$cmd" in
  list) targets ;;
  check)
    # Stable clippy, in the workspace's target folder: the dependencies' check builds are
    # shared with the workspace's own (same versions, fuzz/Cargo.lock began as a copy).
    cargo fmt --manifest-path "$FUZZ/Cargo.toml" -- --check
    cargo clippy --manifest-path "$FUZZ/Cargo.toml" --target-dir target --all-targets \
      --features gen-seeds -- -D warnings
    ;;
  seeds)
    # Built like the targets (so it reuses their build), run as a plain program.
    build --features gen-seeds gen-seeds
    "$(bin gen-seeds)"
    ;;
  smoke)
    secs=${1:-30}
    start=$SECONDS
    build
    echo "fuzz.sh: built in $((SECONDS - start)) s; $secs s per target, sanitizer $SANITIZER"
    failed=0
    for t in $(targets); do
      # Only the checked-in corpus is read (not what earlier local runs left in fuzz/work);
      # what this run finds is kept in fuzz/work/TARGET afterwards.
      log=$(mktemp)
      new=$(mktemp -d)
      t0=$SECONDS
      rc=0
      fuzz_one "$t" "$new" "$log" -max_total_time="$secs" || rc=$?
      summary "$t" "$log" "$rc" $((SECONDS - t0))
      if [ "$rc" -ne 0 ]; then failed=1; tail -40 "$log"; fi
      mkdir -p "$FUZZ/work/$t"
      find "$new" -type f -exec mv -t "$FUZZ/work/$t" {} +
      rm -rf "$log" "$new"
    done
    echo "fuzz.sh: smoke took $((SECONDS - start)) s"
    exit $failed
    ;;
  long)
    runs=10000000
    time=0
    only=()
    while [ $# -gt 0 ]; do
      case "$1" in
        -runs) runs=$2; shift 2 ;;
        -runs=*) runs=${1#-runs=}; shift ;;
        -time) time=$2; shift 2 ;;
        -time=*) time=${1#-time=}; shift ;;
        *) only+=("$1"); shift ;;
      esac
    done
    [ ${#only[@]} -gt 0 ] || mapfile -t only < <(targets)
    SANITIZER=${FUZZ_SANITIZER:-none}
    set_target_dir
    build
    mkdir -p "$FUZZ/logs"
    RUNNER=(nice -n "${FUZZ_NICE:-19}")
    echo "fuzz.sh: long run, $runs executions per target (time cap ${time} s; 0: none), sanitizer $SANITIZER, nice ${FUZZ_NICE:-19}, commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ)"
    failed=0
    for t in "${only[@]}"; do
      log="$FUZZ/logs/$t.log"
      t0=$SECONDS
      rc=0
      fuzz_one "$t" "$FUZZ/work/$t" "$log" -runs="$runs" -max_total_time="$time" || rc=$?
      summary "$t" "$log" "$rc" $((SECONDS - t0))
      [ "$rc" -eq 0 ] || failed=1
    done
    exit $failed
    ;;
  run)
    t=${1:?target}
    shift
    build "$t"
    mkdir -p "$FUZZ/work/$t" "$FUZZ/artifacts/$t"
    exec "$(bin "$t")" "$FUZZ/work/$t" "$FUZZ/corpus/$t" \
      -artifact_prefix="$FUZZ/artifacts/$t/" -max_len="$(max_len "$t")" "${LIMITS[@]}" $(dict "$t") "$@"
    ;;
  cmin)
    only=("$@")
    [ ${#only[@]} -gt 0 ] || mapfile -t only < <(targets)
    build
    for t in "${only[@]}"; do
      mkdir -p "$FUZZ/work/$t"
      new=$(mktemp -d)
      "$(bin "$t")" -merge=1 -max_len="$(max_len "$t")" "${LIMITS[@]}" \
        "$new" "$FUZZ/corpus/$t" "$FUZZ/work/$t" >/dev/null 2>&1
      # A file already in the corpus keeps its name (seeds stay recognisable); new ones are
      # named by their SHA-1, as libFuzzer names them.
      declare -A named=()
      for f in "$FUZZ/corpus/$t"/*; do
        [ -f "$f" ] && named[$(sha1sum <"$f" | cut -c1-40)]=$(basename "$f")
      done
      keep=$(mktemp -d)
      for f in "$new"/*; do
        [ -f "$f" ] || continue
        h=$(sha1sum <"$f" | cut -c1-40)
        cp "$f" "$keep/${named[$h]:-$h}"
      done
      unset named
      rm -rf "$FUZZ/corpus/$t" "$new"
      mv "$keep" "$FUZZ/corpus/$t"
      chmod 755 "$FUZZ/corpus/$t"
      echo "$t: $(ls "$FUZZ/corpus/$t" | wc -l) inputs, $(du -sk "$FUZZ/corpus/$t" | cut -f1) KiB"
    done
    ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
