#!/usr/bin/env bash
# Fit and evaluate the anomaly model on the real datasets (MVTec layout made by make_mvtec_links.py).
#   bash bench/anomaly_datasets.sh bench/out/mvtec [casting magnetic-tile]
#   BACKBONE=lite1 bash bench/anomaly_datasets.sh bench/out/mvtec casting     # models bench-<dataset>-lite1
#   EDGE_PADDING=32 ...                                                         # models bench-<dataset>-<backbone>-pad32
#   FIT_ARGS="--bank-size 16384 --coarse-window 0.8" SUFFIX=-coarse ...         # more fit options; names end in SUFFIX
set -euo pipefail
root=${1:?usage: anomaly_datasets.sh MVTEC_ROOT [DATASET...]}
shift
datasets=${*:-casting magnetic-tile}
export QCFLOW_HOME=${QCFLOW_HOME:-bench/out/data}
qcflow=${QCFLOW:-.venv/bin/qcflow}
backbone=${BACKBONE:-lite0}
padding=${EDGE_PADDING:-0}
suffix=$([ "$backbone" = lite0 ] || echo "-$backbone")$([ "$padding" = 0 ] || echo "-pad$padding")${SUFFIX:-}
read -r -a fit_args <<< "${FIT_ARGS:-}"
for name in $datasets; do
  echo "== $name"
  /usr/bin/time -f "fit wall %es, peak RSS %MKB" "$qcflow" fit anomaly --data "$root/$name" --name "bench-$name$suffix" \
    --backbone "$backbone" --edge-padding "$padding" "${fit_args[@]}"
  "$qcflow" evaluate --model "bench-$name$suffix" --data "$root/$name" --out "bench/out/eval/$name$suffix"
done
