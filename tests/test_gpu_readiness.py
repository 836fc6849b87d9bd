"""GPU-readiness fixes from issue 18, checked on the CPU where the bug can be made to fail.

No GPU runs these tests: CUDA calls are replaced by fakes that fail the way a real device would
(e.g. setting the random state of a device that is not visible raises).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.augment import affine, sample_affine
from engine.device import autocast_dtype
from engine.parallel import distributed
from engine.runs import checkpoint as ckpt


class FakeCuda:
    """Records CUDA RNG calls; like a real runtime, refuses devices that are not visible."""

    def __init__(self, count: int, current: int = 0) -> None:
        self.count, self.current = count, current
        self.states = {i: torch.full((16,), i, dtype=torch.uint8) for i in range(count)}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set)
        monkeypatch.setattr(torch.cuda.random, "set_rng_state", self.set)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [self.get(i) for i in range(self.count)])

    def _index(self, device: Any) -> int:
        index = device if isinstance(device, int) else torch.device(device).index or 0
        if index >= self.count:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        return index

    def get(self, device: Any = "cuda") -> torch.Tensor:
        return self.states[self._index(device)].clone()

    def set(self, state: torch.Tensor, device: Any = "cuda") -> None:
        self.states[self._index(device)] = state.clone()


def _saved_state(monkeypatch: pytest.MonkeyPatch, cuda: list[torch.Tensor]) -> dict[str, Any]:
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: False)
        state = ckpt.capture_rng(np.random.default_rng(0))
    state["cuda"] = cuda
    return state


def test_resume_with_fewer_visible_gpus_restores_the_one_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = [torch.full((16,), 7, dtype=torch.uint8), torch.full((16,), 9, dtype=torch.uint8)]
    state = _saved_state(monkeypatch, saved)
    fake = FakeCuda(count=1)
    fake.install(monkeypatch)
    ckpt.restore_rng(state, np.random.default_rng(1))  # saved on 2 GPUs, 1 visible now
    assert torch.equal(fake.states[0], saved[0])


def test_each_torchrun_rank_restores_its_own_state(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = [torch.full((16,), 3, dtype=torch.uint8), torch.full((16,), 5, dtype=torch.uint8)]
    state = _saved_state(monkeypatch, saved)
    fake = FakeCuda(count=2, current=1)
    fake.install(monkeypatch)
    monkeypatch.setattr(distributed, "_world", distributed.World(rank=1, size=2, local_rank=1, local_size=2))
    ckpt.restore_rng(state, np.random.default_rng(1))
    assert torch.equal(fake.states[1], saved[1])  # rank 1's own generator, not rank 0's
    assert torch.equal(fake.states[0], torch.zeros(16, dtype=torch.uint8))  # not its device: untouched


def test_capture_saves_one_state_per_rank_of_the_device_it_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(count=2, current=1)
    fake.install(monkeypatch)
    state = ckpt.capture_rng(np.random.default_rng(0))
    assert len(state["cuda"]) == 1 and torch.equal(state["cuda"][0], fake.states[1])


def test_bf16_autocast_only_where_the_gpu_runs_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []

    def supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return including_emulation  # a pre-Ampere GPU: bf16 only through emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert autocast_dtype(torch.device("cuda")) is None
    assert asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype(torch.device("cuda")) is torch.bfloat16
    assert autocast_dtype(torch.device("cpu")) is None


def test_affine_warp_is_float32_under_autocast() -> None:
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    warp = sample_affine(4, 0.1, 10, 0.1, x.device, torch.Generator().manual_seed(1))
    reference = affine(x, warp)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        warped = affine(x, warp)
    assert warped.dtype == torch.float32
    assert torch.allclose(warped, reference, atol=1e-5)


def test_ema_update_blends_every_parameter_and_copies_buffers() -> None:
    from engine.methods.base import LayeredGan

    class Nets:
        pass

    live, ema = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        live.weight.fill_(1.0)
        ema.weight.fill_(0.0)
        live.running_mean.fill_(2.0)
    gan = Nets()
    gan.bg, gan.ema_bg, gan.fg, gan.ema_fg = live, ema, torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    gan.steps_done = 0
    gan.config = type("C", (), {"ema_decay": 0.999})()
    LayeredGan.update_ema(gan)  # type: ignore[arg-type]
    decay = 1 / 10
    assert torch.allclose(ema.weight, torch.full((3,), 1 - decay))
    assert torch.equal(ema.running_mean, live.running_mean)


def test_each_segment_shard_gets_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.export import masks, sessions

    opened: list[dict[str, Any]] = []
    monkeypatch.setattr(sessions, "SegmenterSession", lambda model, **kw: opened.append(kw) or kw)
    monkeypatch.setattr(sessions, "cuda_device_count", lambda: 2)
    for i in (1, 2, 3):
        masks._open_model("model.onnx", "auto", (i, 3))
    assert [kw["device_id"] for kw in opened] == [0, 1, 0]
    assert sessions.shard_device_id(None, 4) == 0


def test_step_losses_stay_tensors_until_the_loop_reports() -> None:
    from engine.control import RunControl
    from engine.events import Losses
    from engine.loop import Budget, run_steps

    returned: list[torch.Tensor] = []

    def step(frac: float) -> dict[str, torch.Tensor]:
        returned.append(torch.tensor(float(len(returned) + 1)))
        return {"loss": returned[-1]}

    events = list(run_steps(step, Budget(steps=4), RunControl(), "fit", 0, report_every=2))
    losses = [e.values["loss"] for e in events if isinstance(e, Losses)]
    assert losses == [1.5, 3.5] and all(type(v) is float for v in losses)
    last = [e for e in run_steps(step, Budget(steps=2), RunControl(), "x", 0, report_every=2,
                                 average=False) if isinstance(e, Losses)]
    assert last[0].values == {"loss": 6.0} and type(last[0].values["loss"]) is float


def test_redo_and_latent_direction_steps_leave_their_losses_on_the_device() -> None:
    # A float() of a CUDA loss waits for the GPU: ReDO's and the direction search's steps read
    # five and three of them every step; now the loop reads them at reports only.
    from engine.config import NetConfig, RedoSettings, RunConfig
    from engine.methods import build_method
    from engine.methods.latentdir import direction_loss
    from engine.methods.redo import Redo

    config = RunConfig(folder="x", out="y", method="redo", size=32, batch=2, steps=1,
                       redo=RedoSettings(mask_width=4, gen_width=4, critic_width=4))
    images = [torch.rand(2, 3, 32, 32) * 2 - 1 for _ in range(3)]
    values = Redo(config, torch.device("cpu")).step(*images)
    assert set(values) >= {"d_real", "g_adv", "coverage"}
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in values.values())
    method = build_method(RunConfig(folder="x", out="y", method="ilgan", size=32, batch=2, steps=1,
                                    net=NetConfig(g_width=4, d_width=4, z_dim=8)),
                          torch.device("cpu"))
    v = torch.randn(method.code_dim, requires_grad=True)
    _, parts = direction_loss(method, method.sample_codes(2), v, 1.0, 5.0)
    assert all(isinstance(p, torch.Tensor) and not p.requires_grad for p in parts.values())


def test_border_mass_without_boolean_indexing_matches_the_ring_mean() -> None:
    from engine.losses import border_mass

    mask = torch.rand(3, 1, 20, 28, generator=torch.Generator().manual_seed(0))
    r = max(1, int(round(20 / 16)))
    ring = torch.ones(20, 28, dtype=torch.bool)
    ring[r : 20 - r, r : 28 - r] = False
    assert torch.allclose(border_mass(mask), mask[..., ring].mean())


def test_cuda_session_loads_the_cuda_libraries_first_and_reports_the_fallback(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU machine whose CUDA provider cannot load: libraries preloaded before the session is
    made, the shard's GPU asked for, and the CPU that really runs is what gets reported."""
    from export_helpers import exported_run

    from engine.export import sessions

    model = exported_run(tmp_path_factory) / "segmenter.onnx"
    calls: list[Any] = []
    real_session = sessions.ort.InferenceSession

    def session(path: str, sess_options: Any = None, providers: Any = None) -> Any:
        calls.append(("session", providers))
        return real_session(path, sess_options=sess_options, providers=[sessions.CPU])

    monkeypatch.setattr(sessions, "_cuda_usable", lambda: True)
    monkeypatch.setattr(sessions, "_preload_cuda_libraries", lambda: calls.append("preload"))
    monkeypatch.setattr(sessions.ort, "InferenceSession", session)
    opened = sessions.SegmenterSession(model, device="auto", device_id=1)
    assert calls[0] == "preload" and calls[1][0] == "session"
    cuda_options = dict(calls[1][1][0][1])
    assert calls[1][1][0][0] == sessions.CUDA and cuda_options["device_id"] == "1"
    assert opened.provider == sessions.CPU
    assert opened.warning is not None and "running on the CPU" in opened.warning


def test_segment_cli_says_the_cpu_runs_when_cuda_was_asked_for(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    from export_helpers import exported_run, shapes_photo

    from engine.cli.main import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the fallback cannot be observed")
    model = exported_run(tmp_path_factory) / "segmenter.onnx"
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), shapes_photo(40, 56))
    code = main(["segment", str(photos), str(tmp_path / "out"), "--model", str(model),
                 "--device", "cuda"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "CUDA was requested" in err and "running on the CPU" in err
    assert "on onnxruntime CPUExecutionProvider" in out


def test_cudnn_autotuning_stays_off_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """cudnn.benchmark cost a 30-step H200 run 21 s of autotuning for no faster steps."""
    from engine.device import prepare_cuda

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    prepare_cuda(torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is False
