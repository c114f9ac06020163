#!/bin/bash
# One lent GPU session (15 minutes of device time): optionally the paper-scale throughput bench, the inference
# profile (a = 1 against a = 0.7, fp32 and bf16), then a validation recipe study with every (recipe, seed) its own
# process, side by side on the one GPU.
#
#   OUT=/tmp/gpu_out bash benchmarks/gpu_session.sh "base=" "lp0=train.lambda_p=0"     # on the device machine
#
# Recipes are recipe_study's "name=override;override"; none given runs the base alone. Environment: BENCH_S
# (seconds for the throughput bench, 0 skips it), PROFILE (0 skips the profile), SEEDS, PARALLEL, LAST_START_MIN,
# DEADLINE_MIN. The device machine has its own python3 and torch and no PyAV: a stand-in `av` module
# (.gpu/stub, not in the repository) lets the package import there; the synthetic benchmark decodes no video.
# Figures come back in $OUT.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import av" 2>/dev/null || export PYTHONPATH=$PYTHONPATH:.gpu/stub
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"; } \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

# 1. Throughput of the paper-scale models, fp32 against bf16 (the GPU to itself).
if [ "${BENCH_S:-120}" != 0 ]; then
  timeout "${BENCH_S:-120}" python3 benchmarks/gpu_bench.py --steps 10 --out "$OUT" 2>&1 | tee "$OUT/bench.log" | tail -25
fi
# 2. Where sparsified inference spends its time (the GPU to itself).
if [ "${PROFILE:-1}" != 0 ]; then
  for p in fp32 bf16; do
    timeout 90 python3 benchmarks/inference_profile.py --precision $p --out "$OUT/inference_profile_$p.json" \
      2>&1 | grep -v USDT | tee -a "$OUT/profile.log"
  done
fi
# 3. The validation study: synth-quick phases 1-2 and the phase-3 suite (with the ridge) on the val stream at
#    a = 0.7, fp32 as on the CPUs, one torch thread per process.
[ $# -gt 0 ] || set -- "base="
recipes=()
for r in "$@"; do recipes+=(--recipe "$r"); done
python3 benchmarks/parallel_study.py --out "$OUT/sweep_rows.jsonl" --parallel "${PARALLEL:-15}" \
  --last-start "${LAST_START_MIN:-3.5}" --deadline "${DEADLINE_MIN:-7}" --seeds ${SEEDS:-0 1 2 3 4} \
  "${recipes[@]}" \
  -- --probe --probe-ratios 0.7 --set runtime.threads=1 --set runtime.precision=fp32 --set data.workers=1 \
  2>&1 | tee "$OUT/sweep.log"
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv >> "$OUT/machine.txt" 2>&1
exit 0
