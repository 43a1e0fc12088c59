#!/usr/bin/env bash
# Runway under a memory cap, and peak RSS without one: does the profiler shorten the run
# it watches? The same leak (validation-accumulators, 40 validation episodes: ~55 MB per
# epoch) runs in a fresh cgroup-v1 memory cgroup of CAP bytes, once on the system-allocator
# build of the trainer (no profiler linked) and once under `diagnose run`; each prints its
# epochs as they end, so the last line before the OOM kill is how far it got. Then 8
# epochs of each without a cap, with their max resident set from /usr/bin/time.
#
#   benches/runway.sh [CAP]          (default 1500M; needs root and /sys/fs/cgroup/memory)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
CAP="${1:-1500M}"
BENCH="$ROOT/target/bench"
mkdir -p "$BENCH"
cargo build --release --quiet -p reference-trainer --no-default-features
cp target/release/reference-trainer "$BENCH/trainer-system-alloc"
cargo build --release --quiet -p diagnose -p diagnose-run
cp target/release/diagnose target/release/diagnose-run "$BENCH/"
CG_ROOT=/sys/fs/cgroup/memory
[ -w "$CG_ROOT" ] || { echo "runway.sh needs root and $CG_ROOT (cgroup v1)" >&2; exit 1; }
LEAK=(--leak validation-accumulators --val-episodes 40 --episodes-per-epoch 4)
declare -A CMD=(
    [system-alloc]="$BENCH/trainer-system-alloc ${LEAK[*]}"
    [diagnose-run]="$BENCH/diagnose run --out $BENCH/runway-run --force --no-progress ${LEAK[*]}"
)
ORDER=(system-alloc diagnose-run)

for v in "${ORDER[@]}"; do
    cg="$CG_ROOT/diagnose-runway-$v-$$"
    mkdir "$cg"
    numfmt --from=iec "$CAP" > "$cg/memory.limit_in_bytes"
    set +e
    sh -c "echo \$\$ > $cg/cgroup.procs && exec ${CMD[$v]} --epochs 1000" > "$BENCH/runway-$v.log" 2>&1
    code=$?
    set -e
    last=$(grep -oE '^epoch [0-9]+' "$BENCH/runway-$v.log" | tail -1 | awk '{print $2}' || true)
    kills=$(awk '/oom_kill /{print $2}' "$cg/memory.oom_control")
    peak=$(cat "$cg/memory.max_usage_in_bytes")
    rmdir "$cg"
    echo "runway $v: cap $CAP, exit $code, OOM kills $kills, epochs completed $(( ${last:--1} + 1 )), cgroup peak $(( peak >> 20 )) MiB"
done

for v in "${ORDER[@]}"; do
    /usr/bin/time -f "%M" -o "$BENCH/maxrss-$v.txt" ${CMD[$v]} --epochs 8 > "$BENCH/peak-$v.log" 2>&1
    echo "peak $v: 8 epochs, max RSS $(( $(cat "$BENCH/maxrss-$v.txt") >> 10 )) MiB"
done
