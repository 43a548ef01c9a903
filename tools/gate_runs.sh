#!/usr/bin/env bash
# Unchanged and slowed runs of inference_graph's stages, for tools/gate_rates.py.
#
#   bash tools/gate_runs.sh OUT_DIR SECONDS [DELAY_MS]
#
# Runs, each in its own process, until SECONDS have passed: two unchanged, one with
# --inject-delay-ms DELAY_MS (default 1), and again. Separate processes, because the gate's false
# alarms come from whole runs drifting, not from rounds within one.
set -euo pipefail
out=$1 budget=$2 delay=${3:-1}
mkdir -p "$out"
start=$SECONDS i=0
select='test_stage and inference_graph and not masks and not rle'
while (( SECONDS - start < budget )); do
    i=$((i + 1))
    extra=() name=unchanged
    if (( i % 3 == 0 )); then extra=(--inject-delay-ms "$delay"); name=slowed; fi
    echo "run $i ($name), $((SECONDS - start)) s in" >&2
    timeout -s INT $((budget - (SECONDS - start) + 5)) python3 -m pytest benchmarks/test_stages.py -q \
        -k "$select" --variants inference_graph --sizes 1333x800,3840x2304 "${extra[@]}" \
        --benchmark-json="$out/$(printf %02d $i)_$name.json" >/dev/null || true
done
