#!/bin/sh
set -e
cd /work/main
for set in lumbar-t2 lumbar-water-fat; do
  .venv/bin/saunet segment /tmp/lv/test/$set/imagesTr/*.nii.gz -o /tmp/lv/pred-levels60/$set --model /tmp/lv/run60/checkpoint_last.pt --levels
  .venv/bin/saunet evaluate --pred /tmp/lv/pred-levels60/$set --ref /tmp/lv/test/$set/labelsTr --csv /tmp/lv/levels60-$set.csv --markdown /tmp/lv/levels60-$set.md --per-body
done
