#!/usr/bin/env bash
# What `diagnose watch` costs the program it watches: the same PyTorch DataLoader trainer
# (tests/python/loader_trainer.py, main process + 8 persistent workers = a 9-process tree)
# run alone and under `diagnose watch` (1 s interval, the default), interleaved round after
# round. Prints each variant's median wall time, their ratio, and the watcher's own CPU
# and memory as it reports them.
#
#   benches/watch_overhead.sh [ROUNDS] [TRAINER FLAGS...]
#   default: 5 rounds of --mode clean --workers 8 --persistent --epochs 12 --items 131072 (about 45 s a run)
#   WATCH_FLAGS="--no-own-cgroup" benches/watch_overhead.sh 3   the watch as where no cgroup can be made
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
ROUNDS="${1:-5}"
shift || true
FLAGS=("$@")
[ ${#FLAGS[@]} -gt 0 ] || FLAGS=(--mode clean --workers 8 --persistent --epochs 12 --items 131072)
cargo build --release --quiet --bins
BENCH="$ROOT/target/bench-watch"
mkdir -p "$BENCH"
TRAINER=("$VENV/bin/python" "$ROOT/tests/python/loader_trainer.py" "${FLAGS[@]}")
: > "$BENCH/times.txt"
for round in $(seq "$ROUNDS"); do
    for v in alone watched; do
        start=$(date +%s.%N)
        if [ $v = alone ]; then
            "${TRAINER[@]}" > "$BENCH/$v.log" 2>&1
        else
            "$ROOT/target/release/diagnose" watch ${WATCH_FLAGS:-} --out "$BENCH/run" --force -- "${TRAINER[@]}" > "$BENCH/$v.log" 2>&1
        fi || { echo "$v failed, see $BENCH/$v.log" >&2; exit 1; }
        end=$(date +%s.%N)
        echo "$v $(python3 -c "print(round($end - $start, 3))")" | tee -a "$BENCH/times.txt"
        [ $v = watched ] && grep "the watcher used" "$BENCH/$v.log" | tee -a "$BENCH/watcher.txt"
    done
done
python3 "$ROOT/benches/medians.py" "$BENCH/times.txt" alone watched
