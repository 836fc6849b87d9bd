#!/usr/bin/env bash
# The GPU check of issue 18 (bench/gpu_check.py says what it does): train the default pipeline
# on the demo folder and the horses at 64 and 128 px, export ONNX, segment with the CUDA
# provider, print JSON. Within 8 minutes on one GPU; `--smoke` checks the path on a CPU.
#   bench/gpu_check.sh                      # on the GPU machine
#   bench/gpu_check.sh --smoke --device cpu # anywhere, under 2 minutes
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# onnxruntime-gpu finds CUDA/cuDNN through torch (imported first) or preload_dlls(); say what
# this machine has before the check, so a CPU fallback is explained in the log.
"$python" - <<'PY' >&2
import torch, onnxruntime as ort
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      "| onnxruntime", ort.__version__, ort.get_available_providers())
PY
exec timeout 480 "$python" "$root/bench/gpu_check.py" "$@"
