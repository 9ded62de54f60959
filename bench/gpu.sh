#!/usr/bin/env bash
# The checks and figures that need a CUDA GPU, in one run, on a machine with the [gpu] extra
# (onnxruntime-gpu) and a CUDA build of torch:
#   1. the tests marked gpu (the CUDA provider scores as the CPU does; a GPU fit gives the CPU fit's model),
#   2. torch on the GPU against ONNX Runtime on the providers inspection picks, and end to end,
#   3. fitting on the GPU and the torch reference there, by bank size.
#
#   bash bench/gpu.sh [OUT_DIR]      # logs in OUT_DIR (default bench/out/gpu); PYTHON picks the interpreter
set -euo pipefail
out=${1:-bench/out/gpu}
python=${PYTHON:-python3}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
"$python" -c "import onnxruntime as o, torch; print('ONNX Runtime', o.__version__, o.get_available_providers(),
'| torch', torch.__version__)" | tee -a "$out/gpu.txt"
status=0  # failed tests do not stop the figures; the script's status reports them
"$python" -m pytest -q -m gpu -p no:cacheprovider tests/inspectors/test_cuda_provider.py \
    tests/inspectors/test_fit_device.py 2>&1 | tee "$out/tests.log" || status=$?
"$python" -m bench.anomaly_speed --device cuda --frames 256 --rounds 3 --batches 1 8 32 2>&1 \
    | tee "$out/anomaly_speed.log"
"$python" -m bench.anomaly_gpu --device cuda --backbone lite0 2>&1 | tee "$out/anomaly_gpu.log"
exit "$status"
