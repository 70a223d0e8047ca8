#!/usr/bin/env bash
# The GPU check: one command on a machine with one CUDA GPU (about 10 minutes), from a checkout
# installed with `pip install -e ".[test,bench,mmaction]"` (add `torchcodec` for its decoder, `nvdec` for
# NVDEC's; on the reference machine `../shared/tools/gpu-stage pynvvideocodec==2.2.4 pytest pluggy iniconfig
# packaging pygments` brings PyNvVideoCodec and pytest):
#
#   benchmarks/gpu_check.sh [--quick] [OUT_DIR]        (default OUT_DIR: $OUT/gpu_check if $OUT is set, else gpu_check)
#
# Prints, and writes as OUT_DIR/gpu_check.json (each part's JSON and log beside it):
#   1. vidpeft-bench --one-process: every method on videomae-b 16x224, videoswin-b 8x224 and clip-b16
#      8x224, batch 4, bf16, all in one process (each backbone's cases alternated round by round):
#      step ×full, step ×LoRA, MFU, CUDA peak memory per case; our VideoMAE + LoRA and NormTuning
#      against transformers + peft in the same rounds; then Mona-3D against LoRA the same way;
#   2. peers.py: ViT-B full step (batch 8) and inference (batch 32) against transformers' VideoMAE,
#      Swin-B full step against torchvision's swin3d_b, each pair in one process; MFU, peak memory;
#   3. grid_ops.py: the grid adapters' depthwise convolution in every exact form against Conv3d;
#   4. the data loader, vpetl and videomae pipelines: one worker's clips per CPU-second (with and
#      without --device-augment), clips/s per decoder and with --device-augment at 1 .. all-core
#      workers, scaling efficiency, the device side of --device-augment (CUDA-synchronised ms per
#      clip), loader/model, against mmaction2's loader; a GPU decoder (nvdec) in the training process
#      against the default decoder + --device-augment at all workers; then the tests that need a GPU,
#      `pytest -k "nvdec or cuda"` (NVDEC's frames against PyAV's: frame numbers, and its colour conversion's
#      pixel difference, recorded; the grid convolution forms, Mona's Functions and the fused optimisers on
#      CUDA against autograd and torch's loop), capped at 5 minutes, as gpu_tests.xml;
#   5. --compile against eager in vidpeft-train's default path (its precision and optimiser), ViT-B 16x224
#      batch 8, full fine-tuning and LoRA: compile time, step ratio, MFU, LoRA against full when both are
#      compiled, and whether training after evaluation compiled again;
#   6. grid_ops.py --compile inductor: each form of part 3 also compiled (what a --compile run executes)
#      on the ViT-B cases of ST-Adapter and Mona-3D, capped at 4 minutes and last, so that a cap or the
#      device's time limit cuts nothing else (its JSON holds every case finished).
# Every ratio is measured within one process. --quick is the CPU form (micro backbones, tiny inputs,
# videos and grids, the aot_eager compile backend): it checks that every part runs, in a few minutes.
set -euo pipefail

QUICK=0
OUT_DIR=${OUT:+$OUT/gpu_check}
OUT_DIR=${OUT_DIR:-gpu_check}
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) OUT_DIR="$arg" ;;
    esac
done
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT_DIR"

if [ "$QUICK" = 1 ]; then
    BENCH=(--quick --backbone videomae-micro clip-micro --repeats 2)
    BENCH3D=(--quick --backbone videomae-micro --method lora mona --repeats 2)
    PEERS=(--quick --rounds 2)
    GRID=(--quick --rounds 2)
    GRID_COMPILED=(--quick --rounds 2 --compile aot_eager --cases "st-adapter vit-b" "mona-2d vit-b")
    DATA=(--recipe vpetl,videomae --videos 2 --seconds 1 --kinds k400 --workers 0,all --rounds 1 --batches 1 --batch-size 2 --size 64
          --backbone videomae-micro --method lora --model-steps 1)
    COMPILE=(--quick --steps 1)
else
    BENCH=(--backbone videomae-b videoswin-b clip-b16 --batch-size 4 --repeats 6)
    BENCH3D=(--backbone videomae-b videoswin-b clip-b16 --method lora mona --batch-size 4 --repeats 6 --no-peft)
    PEERS=(--rounds 10)
    GRID=(--rounds 10)
    GRID_COMPILED=(--rounds 10 --compile inductor --cases "st-adapter vit-b" "mona-3d vit-b")
    DATA=(--recipe vpetl,videomae --videos 24 --workers 1,all --rounds 2 --batches 2 --batch-size 8 --frames 16
          --backbone videomae-b --method lora --model-batch 8 --model-steps 3)
    COMPILE=(--backbone videomae-b --method full lora --frames 16 --batch 8 --steps 5)
fi

part() {  # part TITLE LOG command...: prints the title, tees the command's output into OUT_DIR/LOG;
    # a failing part is reported and the next one runs (the summary then names what is missing)
    local title=$1 log=$2; shift 2
    echo "== $title =="
    "$@" 2>&1 | tee "$OUT_DIR/$log" || echo "== $title: exit status $? (see $OUT_DIR/$log) =="
}

part "1/6 vidpeft-bench, every method, one process (bf16)" bench.log \
    "$PYTHON" -m vidpeft.cli.bench --one-process "${BENCH[@]}" --amp bf16 --out "$OUT_DIR/bench"
part "1/6 vidpeft-bench, Mona-3D against LoRA, one process (bf16)" bench_mona3d.log \
    "$PYTHON" -m vidpeft.cli.bench --one-process "${BENCH3D[@]}" --mona-conv 3d --amp bf16 --out "$OUT_DIR/bench_mona3d"
part "2/6 peers: transformers VideoMAE, torchvision swin3d_b (bf16)" peers.log \
    "$PYTHON" "$HERE/peers.py" "${PEERS[@]}" --amp bf16 --json "$OUT_DIR/peers.json"
part "3/6 grid adapters' depthwise convolution forms (bf16)" grid_ops.log \
    "$PYTHON" "$HERE/grid_ops.py" "${GRID[@]}" --amp bf16 --json "$OUT_DIR/grid_ops.json"
part "4/6 data loader" data_speed.log \
    "$PYTHON" "$HERE/data_speed.py" "${DATA[@]}" --json "$OUT_DIR/data_speed.json"
part "4/6 tests on the GPU: nvdec against PyAV, grid forms, Mona, fused optimisers (skipped where CUDA is missing)" \
    gpu_tests.log timeout 300 "$PYTHON" -m pytest -q -rs -p no:cacheprovider -o junit_family=xunit1 \
    "$HERE/../tests/test_data_decode.py" "$HERE/../tests/test_grid_adapters.py" "$HERE/../tests/test_recipe_model.py" \
    -k "nvdec or cuda" --junitxml "$OUT_DIR/gpu_tests.xml"
part "5/6 --compile" compile.log \
    "$PYTHON" "$HERE/compile_speed.py" "${COMPILE[@]}" --json "$OUT_DIR/compile.json"
part "6/6 grid forms compiled (bf16), last: it is capped" grid_ops_compiled.log \
    timeout 240 "$PYTHON" "$HERE/grid_ops.py" "${GRID_COMPILED[@]}" --amp bf16 --json "$OUT_DIR/grid_ops_compiled.json"

"$PYTHON" - "$OUT_DIR" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

out = Path(sys.argv[1])
files = {"bench": "bench/bench.json", "bench_mona3d": "bench_mona3d/bench.json", "peers": "peers.json",
         "grid_ops": "grid_ops.json", "grid_ops_compiled": "grid_ops_compiled.json", "data": "data_speed.json",
         "compile": "compile.json"}
missing = [name for name, path in files.items() if not (out / path).exists()]
parts = {name: json.loads((out / path).read_text()) for name, path in files.items() if name not in missing}
failed = [f"{r['case']['backbone']} {r['case']['method']}: {r['error']}" for name in ("bench", "bench_mona3d")
          for r in parts.get(name, {}).get("results", []) if "error" in r]
gpu_tests = None
if (out / "gpu_tests.xml").exists():
    suite = ET.parse(out / "gpu_tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    gpu_tests = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    gpu_tests["recorded"] = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
                             for case in suite.iter("testcase") if case.find("properties") is not None}
    if gpu_tests["failures"] or gpu_tests["errors"]:
        failed.append(f"pytest -k 'nvdec or cuda': {gpu_tests['failures']} failed, {gpu_tests['errors']} errors")
else:
    missing.append("gpu_tests")


def per_case(run, key):
    return {f"{r['case']['backbone']} {r['case']['method']}": r[key]["step"] for r in run["results"] if key in r
            and r["case"]["impl"] == "vidpeft"}


bench, mona3d = parts.get("bench", {"results": []}), parts.get("bench_mona3d", {"results": []})
summary = {"missing": missing, "failed": failed,
           "step_vs_full": per_case(bench, "vs_full"),
           "step_vs_lora": {**per_case(bench, "vs_lora"),
                            **{k + "-3d": v for k, v in per_case(mona3d, "vs_lora").items() if k.endswith("mona")}},
           "mfu": {f"{r['case']['backbone']} {r['case']['method']}": r["mfu"] for r in bench["results"]
                   if "mfu" in r and r["case"]["impl"] == "vidpeft"},
           "vs_transformers_peft": bench.get("comparisons", {}).get("vs_transformers_peft"),
           "peers": {p["kind"]: {k: p.get(k) for k in ("step_ratio", "infer_ratio")}
                     for p in parts.get("peers", {}).get("pairs", [])},
           "vs_mmaction2": parts.get("data", {}).get("vs_mmaction2"),
           "fastest_decoder": parts.get("data", {}).get("fastest_decoder"),
           "gpu_decoders": {recipe: r.get("gpu_decoders") for recipe, r in parts.get("data", {}).get("recipes", {}).items()},
           "gpu_tests": gpu_tests,
           "fastest_grid_form": {name: {r["case"]: min(r["forms"], key=lambda f: r["forms"][f]["vs_conv3d"])
                                        for r in parts.get(name, {}).get("results", [])}
                                 for name in ("grid_ops", "grid_ops_compiled")},
           "compile_ratio": parts.get("compile", {}).get("ratio"),
           "compiled_mfu": {m: r["compiled_mfu"] for m, r in parts.get("compile", {}).get("methods", {}).items()},
           "compiled_vs_full": parts.get("compile", {}).get("compiled_vs_full"),
           "recompiled_after_evaluation": parts.get("compile", {}).get("recompiled_after_evaluation")}
(out / "gpu_check.json").write_text(json.dumps({"summary": summary, **parts}, indent=2))
print(f"\nwrote {out / 'gpu_check.json'}" + "".join(f"\nmissing: {m}" for m in missing)
      + "".join(f"\nfailed: {f}" for f in failed))
sys.exit(1 if missing or failed else 0)
EOF
