#!/usr/bin/env bash
# The GPU check of packed seeds (docs/speed.md, "Packed seeds"): one command on a machine
# with one CUDA GPU, about 8 minutes, every result as JSON under $OUT (default reports/bench).
# Each part has its own time limit and writes its own file, so a part that runs out of time
# costs only its own figures; the parts run in order of importance:
#   1. gpu_pack_<task>.json  bench CUDA rows, pack 1/4/10, fp32, HASAC and HATD3, on
#                            simple_spread and HalfCheetah-2x3 (+ memory of 10 replay buffers of 1M)
#   2. gpu_pack_run.json     a packed HASAC run: HalfCheetah-2x3, 4 seeds, 200k env steps each
#                            (how far it got, if the limit stopped it: eval rows and perf/sps)
#   3. gpu_pack_bf16.json    HASAC pack 1/10 in bf16 on both tasks
#   4. gpu_pack_compile.json HASAC pack 10 on simple_spread with the batched passes under
#                            torch.compile(mode="reduce-overhead") (CUDA graphs), and without
# Usage: OUT=/some/dir bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/bench}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible: this check needs one')" || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu_check_nvidia_smi.csv" 2>&1 || true
BENCH=(python -m harness.bench --devices cuda --skip-env --out-dir "$OUT")
status=0

echo "== 1/4 bench rows, fp32 (limits 90 + 100 s)"
timeout 90 "${BENCH[@]}" --algos hasac hatd3 --tasks mpe/simple_spread --pack 1 4 10 --no-bf16 --train-seconds 3 \
    --memory-tasks --name gpu_pack_simple_spread || status=1
timeout 100 "${BENCH[@]}" --algos hasac hatd3 --tasks mamujoco/HalfCheetah-2x3 --pack 1 4 10 --no-bf16 --train-seconds 3 \
    --memory-capacity 1000000 --name gpu_pack_halfcheetah || status=1

echo "== 2/4 packed HASAC run, 4 seeds x 200k env steps (limit 180 s)"
RUN_DIR=$(mktemp -d)
timeout 180 python -m harness.run env=mamujoco task=HalfCheetah-2x3 algo=hasac seeds=4 pack=4 device=cuda \
    budget=200000 eval_every=50000 eval_episodes=5 progress=false results_dir="$RUN_DIR" || status=1
python - "$RUN_DIR" "$OUT/gpu_pack_run.json" <<'PY'
import json, sys
from pathlib import Path

import pandas as pd

root, out = Path(sys.argv[1]), Path(sys.argv[2])
seeds = []
for run in sorted(p for p in root.rglob("seed_*") if p.is_dir()):
    read = lambda name: pd.read_csv(run / name) if (run / name).exists() else pd.DataFrame()
    train, meta = read("train.csv"), json.loads((run / "meta.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else None
    seeds.append({"run": str(run.relative_to(root)), "status": meta["status"], "device": meta.get("device"), "summary": summary,
                  "eval": read("eval.csv").to_dict("records"),
                  "env_steps reached": int(train["env_steps"].max()) if len(train) else 0,
                  "median perf/sps of a seed": float(train["perf/sps"].median()) if len(train) else None})
out.write_text(json.dumps({"what": "HASAC HalfCheetah-2x3 seeds=4 pack=4 device=cuda budget=200000", "seeds": seeds}, indent=1))
print(f"written {out}")
PY

echo "== 3/4 bench rows, bf16 (limit 90 s)"
timeout 90 "${BENCH[@]}" --algos hasac --tasks mpe/simple_spread mamujoco/HalfCheetah-2x3 --pack 1 10 --precisions bf16 \
    --train-seconds 3 --memory-tasks --name gpu_pack_bf16 || status=1

echo "== 4/4 torch.compile reduce-overhead on the batched passes (limit 60 s)"
timeout 60 "${BENCH[@]}" --algos hasac --tasks mpe/simple_spread --pack 1 10 --no-bf16 --pack-compile reduce-overhead \
    --train-seconds 4 --memory-tasks --name gpu_pack_compile || status=1
exit $status
