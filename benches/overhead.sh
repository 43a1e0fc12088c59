#!/usr/bin/env bash
# Wall-time overhead of the instrumentation on the reference trainer, as ratios against
# the same trainer built on the system allocator with no profiler linked (what a user
# runs today). Variants run interleaved, round after round, on the same machine; the
# script prints each variant's median and its ratio to the baseline's median.
#
#   benches/overhead.sh [ROUNDS] [TRAINER FLAGS...]
#   default: 3 rounds of --epochs 2 --episodes-per-epoch 15 --val-episodes 5
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
ROUNDS="${1:-3}"
shift || true
FLAGS=("$@")
[ ${#FLAGS[@]} -gt 0 ] || FLAGS=(--epochs 2 --episodes-per-epoch 15 --val-episodes 5)
BENCH="$ROOT/target/bench"
mkdir -p "$BENCH"

# The baseline: reference-trainer without its `jemalloc` feature links no profiler.
cargo build --release --quiet -p reference-trainer --no-default-features
cp target/release/reference-trainer "$BENCH/trainer-system-alloc"
cargo build --release --quiet -p reference-trainer --bin reference-trainer
cp target/release/reference-trainer "$BENCH/trainer-jemalloc"
cargo build --release --quiet -p diagnose -p diagnose-run
cp target/release/diagnose target/release/diagnose-run "$BENCH/"
if nm -D "$BENCH/trainer-system-alloc" | grep -q ' T malloc$'; then
    echo "baseline binary defines malloc: it is not on the system allocator" >&2
    exit 1
fi

OUT="$BENCH/runs"
declare -A CMD=(
    [baseline]="$BENCH/trainer-system-alloc ${FLAGS[*]}"
    [jemalloc]="$BENCH/trainer-jemalloc ${FLAGS[*]}"
    [timeline]="$BENCH/diagnose run --out $OUT/timeline --force --no-progress ${FLAGS[*]}"
    [attribute]="$BENCH/diagnose run --attribute --out $OUT/attribute --force --no-progress ${FLAGS[*]}"
    [exact]="$BENCH/diagnose run --heap exact --out $OUT/exact --force --no-progress ${FLAGS[*]}"
)
ORDER=(baseline jemalloc timeline attribute exact)
: > "$BENCH/times.txt"
for round in $(seq "$ROUNDS"); do
    for v in "${ORDER[@]}"; do
        start=$(date +%s.%N)
        ${CMD[$v]} > "$BENCH/$v.log" 2>&1 || { echo "$v failed, see $BENCH/$v.log" >&2; exit 1; }
        end=$(date +%s.%N)
        echo "$v $(python3 -c "print(round($end - $start, 3))")" | tee -a "$BENCH/times.txt"
    done
done
python3 "$ROOT/benches/medians.py" "$BENCH/times.txt" baseline jemalloc timeline attribute exact
