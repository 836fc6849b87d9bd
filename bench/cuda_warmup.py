"""What does a run's first CUDA step cost, with and without cuDNN's autotuning?

    python bench/cuda_warmup.py [--steps 30] [--size 64] [--json PATH]

The first GPU check (bench/RESULTS.md, 2026-12-04 session 3) saw the prior's first fit step take
7-12 s on an H200, which in a one-minute run left the prior one step (held-out IoU 0.22).
``prepare_cuda`` turns on ``cudnn.benchmark`` (cuDNN times its kernels once per shape). This runs
the same ``--steps`` pipeline on the demo's training photos in two fresh processes, benchmark on
and off, and reports per stage the time to its first step and its steps/s, and the wall time.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + '/bench']
from splits import dev_folders, ensure_photos, link_training_photos, load_split
import engine.device
from engine.config import RunConfig
from engine.control import RunControl
from engine.events import PhaseChanged, Progress
from engine.train.runner import train
if sys.argv[2] == 'off':
    import engine.methods.base, engine.segmenter.fit
    for mod in (engine.device, engine.methods.base, engine.segmenter.fit):
        mod.prepare_cuda = lambda device: None
folder = dev_folders()['demo']
ensure_photos(folder)
out = __import__('pathlib').Path(sys.argv[3])
photos = link_training_photos(folder, load_split('demo'), out / 'photos')
cfg = RunConfig(folder=str(photos), out=str(out / 'run'), size=int(sys.argv[5]), batch=32,
                steps=int(sys.argv[4]), device=sys.argv[6], seed=0)
t0 = time.perf_counter(); stages = {}; phase_t = {}
for ev in train(cfg, RunControl()):
    now = time.perf_counter() - t0
    if isinstance(ev, PhaseChanged) and ev.phase not in phase_t:
        phase_t[ev.phase] = now
    if isinstance(ev, Progress) and ev.unit == 'steps':
        s = stages.setdefault(ev.phase, {'first_step_after_s': round(now - phase_t.get(ev.phase, 0), 2)})
        s['steps_per_s'] = round(ev.steps_per_s, 2)
import torch
print(json.dumps({'benchmark': sys.argv[2], 'cudnn_benchmark_flag': torch.backends.cudnn.benchmark,
                  'wall_s': round(time.perf_counter() - t0, 1), 'stages': stages}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cuda", help="cpu only to check the script")
    args = ap.parse_args(argv)
    root = str(Path(__file__).resolve().parents[1])
    rows = []
    for mode in ("on", "off"):
        out = tempfile.mkdtemp(prefix=f"peel-warmup-{mode}-")
        done = subprocess.run([sys.executable, "-c", CHILD, root, mode, out, str(args.steps),
                               str(args.size), args.device], capture_output=True, text=True, timeout=240)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        rows.append(json.loads(lines[-1]) if lines else
                    {"benchmark": mode, "error": done.stderr[-800:]})
        if args.json is not None:
            args.json.write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
