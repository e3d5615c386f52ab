#!/bin/bash
# Runs the GPU checks of issue 5 on a machine with an NVIDIA GPU, from the repository root.
# Expects .gpu/ (ignored by git) to hold what was built on the CPU machine:
#   .gpu/bin/<test binaries>   cargo test -p gorgon-cuda --release --no-run (copied, hash dropped)
#   .gpu/*.whl                 maturin build --release (the abi3 wheel)
# Stages: rust | py | full | bench | all (default: all = rust py bench). Logs go to $OUT.
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
NV=$(dirname "$(find /usr /opt -name 'libnvrtc.so.13*' 2>/dev/null | grep -v builtins | head -1)")
CB=$(dirname "$(find /usr /opt -name 'libcublas.so.13*' 2>/dev/null | head -1)")
echo "nvrtc in $NV; cublas in $CB"
export GORGON_NVRTC_PATH=$NV GORGON_CUBLAS_PATH=$CB
STAGES=${*:-all}
has() { [[ " $STAGES " == *" $1 "* || " $STAGES " == *" all "* ]]; }
if has rust; then
  .gpu/bin/probe 2>&1 | tail -5
  for t in gorgon_cuda nvrtc_compile no_gpu host_emulation gpu machine; do
    timeout 300 .gpu/bin/$t --test-threads=4 > "$OUT/rust_$t.log" 2>&1; echo "== rust $t rc=$?"
    grep -E "^test result|FAILED|panicked|free device memory" "$OUT/rust_$t.log" | tail -4
  done
fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl || exit 1
export PYTHONPATH=/tmp/site
python3 -c "import gorgon_rs as gr; print('gorgon_rs sees CUDA:', gr.cuda.is_available(), gr.cuda.device_count())"
if has py; then
  timeout 400 python3 -m pytest tests/test_cuda.py -q -rs -p no:cacheprovider --maxfail=40 2>&1 | tee "$OUT/pytest_cuda.log" | tail -15
fi
if [[ " $STAGES " == *" full "* ]]; then
  timeout 400 python3 -m pytest tests -q -p no:cacheprovider -k "not distributed" --ignore=tests/fuzz --ignore=tests/test_cuda.py 2>&1 | tee "$OUT/pytest_full.log" | tail -8
fi
if has bench; then
  timeout 300 python3 benches/gpu_bench.py --out "$OUT/gpu_bench.md" 2>&1 | tail -30
fi
