#!/usr/bin/env bash
# The covariances of a trained NIFF-ConvMixer as the frozen learned init of a k x k ConvMixer (issue 24):
# one NIFF-ConvMixer-64/8 trained one epoch on mnist5k (the Training Lab's NIFF preset, seed 0), its
# filters' central 15 x 15 crops' covariances then initialize ConvMixer-64/8 with frozen 15 x 15 filters,
# against the default and the Gaussian init, seeds 0-4.
#     bash reports/niff/niff_as_init.sh [OUT_DIR]     # about 3 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-reports/niff}
DB=$(mktemp -d)/runs.db
PY=${PYTHON:-.venv/bin/python}
$PY -m convcov_core compare --dataset mnist5k --model convmixer-64/8-niff --kernel-size 15 --epochs 1 \
    --inits default --seeds 0 --save --name "NIFF source" --db "$DB" --json "$OUT/as_init_source.json"
$PY -m convcov_core compare --dataset mnist5k --model convmixer-64/8 --kernel-size 15 --epochs 1 \
    --inits default,gaussian,learned --learned-from 1 --freeze filters --seeds 0,1,2,3,4 --db "$DB" \
    --json "$OUT/as_init.json"
