#!/usr/bin/env bash
# DRAFT recipe of `photo-conv-v2` (issue 16). Not run yet: no figures, not shipped.
#
# Rerun from the repository root on a machine with the `train` and `bench` extras installed (plus
# `pip install matplotlib` for its one sample photograph):
#     bash models/recipes/photo-conv-v2.sh [WORK_DIR] [DEVICE]
# It needs the Debian packages of shared/DATA.md unpacked under $IMGRET_PHOTO_PACKAGES (default
# /work/debs/x):
#     apt-get download plasma-workspace-wallpapers mate-backgrounds lomiri-wallpapers-16.04 \
#         lxqt-themes palapeli-data tuxpaint-stamps-default stellarium-data
#     for f in *.deb; do dpkg -x "$f" "$IMGRET_PHOTO_PACKAGES"; done
# Data (models/recipes/photo_data.py --set v2): 843 distinct photographs, 421 of them train; the
# held-out ones (the near-duplicate benchmark's 19 wallpapers among them, and all 240 pictures of
# the class benchmark) never give a crop. See benchmarks/README.md for sources and licences.
#
# What the trainer cannot do yet (so the heavy edits of benchmarks/neardup.py stay unseen in
# training): quarter and half turns (rot90/rot180), greyscale views, a caption or logo pasted
# over ~10%, letterbox/pillarbox bars, shrinking into a larger canvas ("screenshot"), gaussian
# blur, and crops down to 40% of the area as a second view. --rotate, --colour-jitter and
# --min-scale are the nearest options that exist today.
set -euo pipefail
WORK=${1:-build/photo-conv-v2}
DEVICE=${2:-auto}
PY=${PYTHON:-python}
mkdir -p "$WORK"

# 1. 40,000 random crops (10-100% of the area, aspect 3:4..4:3, random mirror) of the train photos,
#    96 px, shared between packages by sqrt(train photos).
$PY models/recipes/photo_data.py --set v2 --out "$WORK/crops" --n 40000 --size 96 --seed 0

# 2. Train: v1's recipe made wider and longer. Cost check (1 epoch smoke run, one onnxruntime thread
#    on the shared CPU): width 48 gave 3.7 MB fp32 / 0.96 MB int8 and 3.6 ms per 64 px picture for
#    the graph alone against v1's 2.2 ms (1.6x; about 1.4x once decode is counted). If the measured
#    index-time cost is over 1.5x v1's, drop to --width 40.
#    Stronger views (zoom to 40% of the side, more
#    colour jitter, rotation up to 15 degrees) so crops, colour and rotation move the code less.
imgret train "$WORK/crops" --out "$WORK/run" --arch conv --image-size 64 --latent-dim 128 \
    --width 48 --decoder light --recon-views 1 --epochs 30 --batch-size 256 --lr 2e-3 \
    --val-split 0.05 --seed 0 --device "$DEVICE" \
    --augment --invariance 1.0 --invariance-loss contrastive --temperature 0.2 --projector \
    --colour-jitter 0.5 --rotate 15 --min-scale 0.4

# 3. Export with mirror averaging in the graph, and an int8 twin (must stay <= 2 MB; fp32 <= 5 MB).
imgret export "$WORK/run" -o "$WORK/photo-conv-v2.onnx" --flip-tta --int8 --model-id photo-conv-v2

# 4. Score on both photo benchmarks beside v1 and the baselines (issue 16's goals: near-dup R@1
#    >= 0.99 over the six classic transforms, each >= 0.97, each heavy edit >= 0.90; class P@10 >=
#    the best baseline's + 0.10), and time it against v1 (<= 1.5x per picture).
$PY benchmarks/neardup.py --model imgret/models/photo-conv-v1.onnx --model "$WORK/photo-conv-v2.onnx" \
    --json "$WORK/neardup.json"
$PY benchmarks/photo_classes.py --model imgret/models/photo-conv-v1.onnx \
    --model "$WORK/photo-conv-v2.onnx" --json "$WORK/classes.json"
ls -l "$WORK"/photo-conv-v2*.onnx

echo "to ship (only if it beats v1 on every benchmark): cp $WORK/photo-conv-v2.onnx imgret/models/"
