#!/usr/bin/env bash
# Everything measured on a CUDA machine, in one go, within a fixed time:
#   1. each optimizer on the GPU against the CPU (benchmarks/device_agreement.py, in parallel
#      processes) while the compile caches are filled for the timed runs (warm_compile_cache.py);
#   2. tests/test_cuda.py (the same checks as assertions, with the caches now warm);
#   3. optarena bench, float32, against torch's fused Adam/AdamW, torch.optim.Muon and the peers;
#   4. optarena bench, bf16 parameters with bf16 state, on the optimizers people train in bf16.
# Each stage has its own time limit; the bench saves its rows after each optimizer, so a stage
# cut short keeps what it measured.
#
#   bash benchmarks/gpu_run.sh OUT_DIR            (run from the repository root)
#
# Without an installed optarena it runs from src/; peer libraries are installed from .whl/
# when that folder holds their wheels.
set -u
out=${1:?usage: gpu_run.sh OUT_DIR}
mkdir -p "$out"
log="$out/gpu_run.log"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
stage() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$log"; }

stage "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  "$py" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
} >>"$log" 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/peers .whl/*.whl >>"$log" 2>&1 \
    && export PYTHONPATH="$PYTHONPATH:/tmp/peers"
fi

FIRST="adamw,adam,sgd,muon,lion,adafactor,lamb,soap,shampoo,sm3,schedule_free_adamw,ademamix,adopt,prodigy,lars,kfac"
ALL=$("$py" -c "from optarena.bench.runner import resolve_names; f='$FIRST'.split(','); print(','.join(f + [n for n in resolve_names(None) if n not in f]))")
BF16="adamw,adam,sgd,muon,lion,adafactor,lamb,schedule_free_adamw,ademamix,soap"

stage "agreement and cache warm-up"
export TORCHINDUCTOR_COMPILE_THREADS=1  # twelve processes compile side by side
names=(${ALL//,/ })
for part in 0 1 2 3 4 5; do
  chunk=$(printf "%s\n" "${names[@]}" | awk -v p=$part 'NR % 6 == p' | paste -sd, -)
  timeout 225 "$py" benchmarks/device_agreement.py --device cuda --optimizers "$chunk" >"$out/agree_$part.txt" 2>/dev/null &
done
timeout 180 "$py" benchmarks/warm_compile_cache.py --device cuda --workers 6 --optimizers "$ALL" >>"$log" 2>&1
timeout 45 "$py" benchmarks/warm_compile_cache.py --device cuda --workers 6 --optimizers "$BF16" \
  --dtype bfloat16 --state-dtype bfloat16 >>"$log" 2>&1
wait
cat "$out"/agree_*.txt | sort -u >"$out/agreement.txt"; rm -f "$out"/agree_*.txt

stage "tests/test_cuda.py"
parallel=$("$py" -c "import xdist" 2>/dev/null && echo "-n 8")
timeout 90 "$py" -m pytest -q -p no:cacheprovider $parallel tests/test_cuda.py -rf >>"$log" 2>&1

stage "bench float32"
unset TORCHINDUCTOR_COMPILE_THREADS
timeout 180 "$py" -m optarena bench --device cuda --optimizers "$ALL" --no-compile-timing --steps 20 --warmup 5 \
  --peer-step-limit 5 --out "$out/gpu_float32" >>"$log" 2>&1
stage "bench bfloat16"
timeout 70 "$py" -m optarena bench --device cuda --optimizers "$BF16" --dtype bfloat16 --state-dtype bfloat16 \
  --no-compile-timing --steps 20 --warmup 5 --peer-step-limit 5 --out "$out/gpu_bfloat16" >>"$log" 2>&1
stage "done"
