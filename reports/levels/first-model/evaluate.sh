#!/bin/sh
# Held-out scans of /tmp/lv/split.json: the first level model and the shipped model, body-wise.
set -e
cd /work/main
for set in lumbar-t2 lumbar-water-fat; do
  .venv/bin/saunet segment /tmp/lv/test/$set/imagesTr/*.nii.gz -o /tmp/lv/pred-levels/$set --model /tmp/lv/run/checkpoint_last.pt --levels
  .venv/bin/saunet evaluate --pred /tmp/lv/pred-levels/$set --ref /tmp/lv/test/$set/labelsTr --csv /tmp/lv/levels-$set.csv --markdown /tmp/lv/levels-$set.md --per-body
  .venv/bin/saunet segment /tmp/lv/test/$set/imagesTr/*.nii.gz -o /tmp/lv/pred-shipped/$set
  .venv/bin/saunet evaluate --pred /tmp/lv/pred-shipped/$set --ref /tmp/lv/test/$set/labelsTr --csv /tmp/lv/shipped-$set.csv --markdown /tmp/lv/shipped-$set.md --per-body
done
