#!/usr/bin/env bash
# Recipe of the bundled default encoder `photo-conv-v1` (imgret/models/photo-conv-v1.onnx).
#
# Rerun from the repository root on a machine with the `train` extra installed:
#     bash models/recipes/photo-conv-v1.sh [WORK_DIR]
# It needs the photographs of shared/DATA.md unpacked under $IMGRET_PHOTO_PACKAGES (default
# /work/debs/x): apt-get download plasma-workspace-wallpapers mate-backgrounds lomiri-wallpapers-16.04
# lxqt-themes palapeli-data && for f in *.deb; do dpkg -x "$f" x; done ; plus `pip install
# scikit-image scikit-learn` for their sample photographs. Only the train split of the photos is used;
# the held-out split is what benchmarks/neardup.py scores on.
set -euo pipefail
WORK=${1:-build/photo-conv-v1}
PY=${PYTHON:-python}
mkdir -p "$WORK"

# 1. 12,000 random crops (10-100% of the area, aspect 3:4..4:3, random mirror) of the 40 train photos.
$PY models/recipes/photo_data.py --set v1 --out "$WORK/crops" --n 12000 --size 96 --seed 0

# 2. Train: conv encoder with global pooling, 64 px, 128-d; light decoder; reconstruction plus a
#    contrastive agreement term between two random views (zoom to 60%, shift, mirror, rotation up to
#    10 degrees, colour jitter 0.4), random erasing on the inputs.
imgret train "$WORK/crops" --recipe plain --out "$WORK/run" --arch conv --image-size 64 --latent-dim 128 \
    --decoder light --epochs 12 --batch-size 128 --lr 2e-3 --val-split 0.1 --seed 0 \
    --augment --invariance 1.0 --invariance-loss contrastive --temperature 0.2 \
    --colour-jitter 0.4 --rotate 10 --min-scale 0.6

# 3. Export the encoder with mirror averaging built into the graph (exact flip invariance).
imgret export "$WORK/run" -o "$WORK/photo-conv-v1.onnx" --flip-tta --model-id photo-conv-v1

# 4. Score it on the held-out near-duplicate benchmark, beside the hand-made baselines.
$PY benchmarks/neardup.py --model "$WORK/photo-conv-v1.onnx" --json "$WORK/neardup.json"

echo "to ship: cp $WORK/photo-conv-v1.onnx imgret/models/"
