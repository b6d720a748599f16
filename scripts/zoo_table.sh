#!/usr/bin/env bash
# The README's model-zoo table: every family trained from scratch on the same synthetic rooms for the same number
# of samples (2,200 rooms at 128x160, 90/10 split: 1,980 x 10 epochs = 19,800 samples, 1,240 steps of 16), one
# run at a time so none shares the cores, then all evaluated side by side on the 200 held-out test rooms and the
# edges / clutter / paired glass suites by `depthforge compare`.
#
#   scripts/zoo_table.sh [OUT [NAME ...]]     (default OUT: runs/zoo; default: every model below)
#
# Each model keeps its family's -synth recipe (loss, optimiser, schedule, precision); the overrides below set the
# shared data and the size. Depth Anything V2 needs multiples of its 14-pixel patch, so it trains at 126x168 on the
# same rooms; every model is tested at 128x160. A finished run is kept: rerunning skips it. An interrupted one
# (Ctrl-C or SIGTERM: the trainer saves its last step) continues where it stopped when the script is run again, its
# wall time the sum of its parts (wall_s.part holds the seconds of the parts before). Every recipe still to train is
# resolved before the first run starts, so a bad one fails in seconds rather than after hours of the others;
# ZOO_DRY=1 does only that. ZOO_EXTRA (overrides for every run) and ZOO_COMPARE (compare options) are for quick
# trials and the test of this script.
set -euo pipefail
# a Ctrl-C or SIGTERM sent to the whole group reaches the trainer too, which saves its step and exits 130/143: the
# script waits for it and keeps that run's time (below) instead of dying first; one sent to the script alone stops
# it after the run in progress
stop=0
trap 'stop=1' INT TERM
out=${1:-runs/zoo}
shift || true
df=${DEPTHFORGE:-.venv/bin/depthforge}
data="data.n=2200 data.val_fraction=0.1 test_data.n=200 test_data.size=[128,160] train.epochs=10
      train.batch_size=16 train.num_workers=0 train.log_every_n_steps=20"
hw="data.size=[128,160]"
declare -A recipe=(
  [seed-unet]="-c quick model.width=1.0 $hw"
  [depthformer]="-c depthformer-synth $hw"
  [binsformer]="-c binsformer-synth $hw"
  [resnet-unet-34]="-c unet-synth model.size=34 $hw"
  [da-v2-metric-small]="-c depth-anything-v2-synth model.size=null model.config={'depth_estimation_type':'metric'}
                        train.precision=bf16-mixed data.size=[126,168]"
  [glpn]="-c depth-anything-v2-synth model.name=glpn $hw"
  [zoedepth]="-c depth-anything-v2-synth model={'name':'zoedepth','size':'micro'} loss={'name':'silog'} $hw"
  [dpt]="-c depth-anything-v2-synth model.name=dpt loss={'name':'ssi-gradient'} eval.align=lstsq-disparity $hw"
  [convnext-unet]="-c unet-synth model.name=convnext-unet $hw"
  [da-v2-metric-micro]="-c depth-anything-v2-synth data.size=[126,168]"
)
order=(seed-unet depthformer binsformer resnet-unet-34 da-v2-metric-small glpn zoedepth dpt convnext-unet
       da-v2-metric-micro)
names=("${@:-${order[@]}}")
mkdir -p "$out"
for name in "${names[@]}"; do
  [[ -n "${recipe[$name]:-}" ]] || { echo "zoo_table: unknown model $name (known: ${order[*]})" >&2; exit 1; }
  [[ -f "$out/$name/wall_s" ]] && continue
  # shellcheck disable=SC2086
  if ! err=$("$df" train ${recipe[$name]} $data ${ZOO_EXTRA:-} out="$out/$name" --print-config 2>&1 >/dev/null); then
    echo "zoo_table: $name: ${err#error: }" >&2
    exit 1
  fi
done
[[ -z "${ZOO_DRY:-}" ]] || { echo "zoo_table: the recipes of ${names[*]} resolve"; exit 0; }
models=()
for name in "${names[@]}"; do
  ((stop == 0)) || { echo "zoo_table: stopped before $name; run the script again to continue" >&2; exit 143; }
  ckpt="$out/$name/checkpoints/last.ckpt"
  part="$out/$name/wall_s.part"
  if [[ ! -f "$out/$name/wall_s" ]]; then
    before=0 how=--overwrite  # no checkpoint yet: a new run (over a run that died before its first save)
    if [[ -f "$ckpt" ]]; then
      before=$(cat "$part" 2>/dev/null || echo 0) how=--resume
      echo "$name: resuming $ckpt (${before} s so far)"
    fi
    SECONDS=0
    rc=0
    mkdir -p "$out/$name"  # for wall_s.part, even when the trainer stops before writing anything
    # shellcheck disable=SC2086  # the recipe strings are word lists on purpose
    "$df" train ${recipe[$name]} $data ${ZOO_EXTRA:-} out="$out/$name" --no-progress "$how" || rc=$?
    echo $((before + SECONDS)) > "$part"
    if ((rc)); then
      echo "zoo_table: $name stopped (exit $rc); run the script again to continue it" >&2
      exit "$rc"
    fi
    mv "$part" "$out/$name/wall_s"
    echo "$name: trained in $(cat "$out/$name/wall_s") s"
  fi
  models+=(--model "$ckpt")
done
# shellcheck disable=SC2086
"$df" compare "${models[@]}" --suites edges,clutter,glass --out "$out/compare" --no-progress ${ZOO_COMPARE:-}
