#!/usr/bin/env bash
# False alarms and misses of the verdict on short runs: what a user who runs 3 epochs
# first gets. N runs of each kind (default 20):
#   run-clean    diagnose run --epochs 3 (the reference trainer, no leak)
#   run-leak     the same, keeping about 2 % of its heap level per epoch
#                (--leak validation-accumulators --val-episodes 2)
#   watch-clean  diagnose watch of a 4-epoch PyTorch loop with 2 persistent DataLoader workers
#   watch-leak   the same loop keeping 2 % of the main process's USS per epoch (7 MiB)
# Each run's verdict is read from its summary.json; the table at the end is what
# docs/error-rates-bench.txt holds. Goal (issue 24): clean called growing at most 1 in 20;
# leaking called growing at least 19 in 20.
#
#   benches/error_rates.sh [N] [KINDS...]
#   REJUDGE=1 benches/error_rates.sh [N]   re-judge the recorded runs with the current
#                                          binary (`diagnose report`), without running them
#   FIRST=21 benches/error_rates.sh 10     seeds 21-30 (runs a rule was not tuned on)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
N="${1:-20}"
shift || true
KINDS=("${@:-run-clean run-leak watch-clean watch-leak}")
KINDS=(${KINDS[*]})
cargo build --release --quiet -p diagnose -p diagnose-run
OUT="$ROOT/target/bench/error-rates"
mkdir -p "$OUT"
PY="$ROOT/.venv/bin/python"
TRAINER="$ROOT/tests/python/short_loop.py"
LOOP=(--epochs 4 --workers 2)
for kind in "${KINDS[@]}"; do
    : > "$OUT/$kind.tsv"
    for i in $(seq "${FIRST:-1}" $(( ${FIRST:-1} + N - 1 ))); do
        d="$OUT/$kind-$i"
        case "$kind" in
            run-clean) cmd=("$ROOT/target/release/diagnose" run --epochs 3 --seed "$i" --out "$d" --force --no-progress) ;;
            run-leak) cmd=("$ROOT/target/release/diagnose" run --epochs 3 --seed "$i" --out "$d" --force --no-progress --leak validation-accumulators --val-episodes 2) ;;
            watch-clean) cmd=("$ROOT/target/release/diagnose" watch --out "$d" --force -- "$PY" "$TRAINER" "${LOOP[@]}") ;;
            watch-leak) cmd=("$ROOT/target/release/diagnose" watch --out "$d" --force -- "$PY" "$TRAINER" "${LOOP[@]}" --leak-mib 7) ;;
            *) echo "unknown kind $kind" >&2; exit 2 ;;
        esac
        if [ "${REJUDGE:-0}" = "1" ]; then
            "$ROOT/target/release/diagnose" report "$d" > /dev/null 2>&1 || true
        else
            "${cmd[@]}" > "$d.log" 2>&1 || true
        fi
        "$PY" - "$d/summary.json" "$kind" "$i" >> "$OUT/$kind.tsv" <<'PYEOF'
import json, sys
path, kind, i = sys.argv[1:4]
try:
    a = json.load(open(path))
except Exception as e:
    print(f"{kind}\t{i}\tmissing\t\t\t"); sys.exit()
primary = ("rss_in_use_bytes", "je_allocated_bytes", "tree_pss_bytes", "main_uss_bytes", "workers_uss_bytes")
judged = [s for s in a["series"] if s["column"] in primary]
head = next((s for s in judged if s["class"] == "growing"), judged[0] if judged else None)
if head is None:
    print(f"{kind}\t{i}\t{a['verdict']}\t\t\t"); sys.exit()
p = head.get("paired") or {}
level = head["last_bytes"] or 1
slope = head["slope_bytes_per_epoch"] or 0
print(f"{kind}\t{i}\t{a['verdict']}\t{head['name']}\t{slope / 2**20:+.2f}\t{100 * slope / level:+.2f}\t{p.get('pairs', '')}")
PYEOF
        tail -1 "$OUT/$kind.tsv"
    done
done
echo
"$PY" - "$OUT" "${KINDS[@]}" <<'PYEOF'
import sys, statistics
out, kinds = sys.argv[1], sys.argv[2:]
print("kind         runs  growing  flat  insufficient   median slope (% of level)")
for k in kinds:
    rows = [l.rstrip("\n").split("\t") for l in open(f"{out}/{k}.tsv") if l.strip()]
    count = lambda v: sum(1 for r in rows if r[2] == v)
    pct = [float(r[5]) for r in rows if len(r) > 5 and r[5]]
    med = f"{statistics.median(pct):+.2f} %" if pct else "-"
    print(f"{k:<12} {len(rows):4d}  {count('growing'):7d}  {count('flat'):4d}  {count('insufficient'):12d}   {med}")
PYEOF
