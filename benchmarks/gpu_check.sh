#!/usr/bin/env bash
# The GPU check: one command on a machine with one CUDA GPU (about 8 minutes), from a checkout
# installed with `pip install -e ".[test,bench,mmaction]"` (add `torchcodec` for its decoder):
#
#   benchmarks/gpu_check.sh [--quick] [OUT_DIR]        (default OUT_DIR: gpu_check)
#
# Prints, and writes as OUT_DIR/gpu_check.json (with the parts' own outputs beside it):
#   1. vidpeft-bench: every method on ViT-B 16x224 and Swin-B 8x224, batch 8, bf16, with our
#      VideoMAE + LoRA against transformers + peft (ratios within the run);
#   2. the data loader's clips/s per decoder with 0 .. all-core workers, K400- and SSv2-like
#      videos, against mmaction2's loader, next to the model's training step rate; 2b. one
#      worker's CPU per clip by stage and per prep encoding (OUT_DIR/clip_cost.json);
#   3. --compile against eager, the training step of ViT-B 16x224 + LoRA.
# Every ratio is measured within one run. --quick is the CPU form (micro backbones, tiny
# videos, the aot_eager compile backend): it checks that every part runs, in a few minutes.
set -euo pipefail

QUICK=0
OUT=gpu_check
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) OUT="$arg" ;;
    esac
done
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"

if [ "$QUICK" = 1 ]; then
    BENCH=(--quick --backbone videomae-micro --method full lora --repeats 1)
    DATA=(--videos 2 --seconds 1 --kinds k400 --workers 0,all --rounds 1 --batches 1 --batch-size 2 --size 64
          --backbone videomae-micro --method lora --model-steps 1)
    COMPILE=(--quick --steps 1)
else
    BENCH=(--batch-size 8)
    DATA=(--videos 24 --workers 0,2,4,8,all --rounds 2 --batches 4 --batch-size 16 --frames 16
          --backbone videomae-b --method lora --model-batch 8 --model-steps 3)
    COMPILE=(--backbone videomae-b --method lora --frames 16 --batch 8 --steps 5)
fi

echo "== 1/3 vidpeft-bench (bf16) =="
"$PYTHON" -m vidpeft.cli.bench "${BENCH[@]}" --amp bf16 --out "$OUT/bench"
echo "== 2/3 data loader =="
"$PYTHON" "$HERE/data_speed.py" "${DATA[@]}" --json "$OUT/data_speed.json"
# ---- clip cost (issue 23, data): one worker's CPU per clip by stage, per prep encoding ----
if [ "$QUICK" = 1 ]; then
    CLIP=(--kinds ssv2 --recipes vpetl --videos 1 --items 2 --batch-size 2)
else
    CLIP=(--videos 4 --items 48 --batch-size 16)
fi
echo "== 2b/3 clip cost (benchmarks/clip_cost.py) =="
"$PYTHON" "$HERE/clip_cost.py" "${CLIP[@]}" --json "$OUT/clip_cost.json"
# ---- end clip cost ----
echo "== 3/3 --compile =="
"$PYTHON" "$HERE/compile_speed.py" "${COMPILE[@]}" --json "$OUT/compile.json"

"$PYTHON" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
parts = {name: json.loads((out / path).read_text())
         for name, path in (("bench", "bench/bench.json"), ("data", "data_speed.json"), ("compile", "compile.json"))}
summary = {"vs_transformers_peft": parts["bench"]["comparisons"].get("vs_transformers_peft"),
           "vs_mmaction2": parts["data"].get("vs_mmaction2"), "fastest_decoder": parts["data"].get("fastest_decoder"),
           "compile_ratio": parts["compile"]["ratio"]}
(out / "gpu_check.json").write_text(json.dumps({"summary": summary, **parts}, indent=2))
print(f"\nwrote {out / 'gpu_check.json'}")
EOF
