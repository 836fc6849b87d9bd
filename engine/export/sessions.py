"""Running an exported segmenter with onnxruntime, and saying honestly where it runs.

One class owns the ``InferenceSession``: it reads the model's own metadata (training size,
stride, normalisation) so callers only hand it photos, picks the execution provider, and reports
the provider that *really* runs. onnxruntime-gpu silently falls back to the CPU when CUDA or cuDNN
cannot load, so the requested provider means nothing; ``session.get_providers()`` is the truth.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.export.metadata import (
    INPUT_NAME,
    OUTPUT_NAME,
    ModelContractError,
    ModelMetadata,
    ModelMetadataError,
)
from engine.segmenter.infer import finish, prepare
from engine.segmenter.model import NORMALISATION

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


class ModelLoadError(Exception):
    """The ONNX file is missing, unreadable or not a Peel segmenter; the message says which."""


def _cuda_usable() -> bool:
    """Whether a CUDA device is visible. torch answers cheaply and is imported anyway by the
    engine; importing it first also loads the CUDA libraries onnxruntime-gpu needs."""
    if CUDA not in ort.get_available_providers():
        return False
    try:
        import torch
    except ImportError:
        return True  # no torch to ask: let onnxruntime try, get_providers() will tell
    return bool(torch.cuda.is_available())


def _preload_cuda_libraries() -> None:
    try:
        import torch  # noqa: F401  (loads CUDA/cuDNN so onnxruntime finds them)
    except ImportError:
        pass
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # best effort; the provider check below is what counts
            log.debug("onnxruntime.preload_dlls failed: %s", exc)


def model_path_problem(path: Path) -> str | None:
    """Why ``path`` is not an ONNX model to open, saying what to give instead (a run folder, a
    ``.pt`` file and a device were all "no such model file", or a protobuf parse error)."""
    if path.is_dir():
        inside = path / "segmenter.onnx"
        hint = f"give {inside}" if inside.is_file() else f"make its model: peel export-onnx {path}"
        return f"{path} is a folder, not a model file ({hint})"
    if not path.exists():
        return f"{path}: no such model file (make one with peel export-onnx)"
    if not path.is_file():
        return f"{path}: not a regular file"
    if path.suffix == ".pt":
        return (f"{path} is a torch segmenter; segment runs its ONNX export: "
                f"peel export-onnx {path}, then --model {path.with_suffix('.onnx')}")
    return None


def shard_device_id(shard: tuple[int, int] | None, device_count: int) -> int:
    """The GPU that shard ``(i, n)`` (1-based) of ``peel segment --shard`` runs on.

    Shards are separate processes started side by side; without this every one of them would
    queue on GPU 0 while the others sit idle. Shard i goes to GPU (i - 1) mod the GPUs visible.
    """
    if shard is None or device_count <= 1:
        return 0
    return (shard[0] - 1) % device_count


def cuda_device_count() -> int:
    """GPUs torch sees (0 without torch or CUDA); torch is imported anyway by the engine."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def cpu_threads() -> int:
    """Cores this process may use (affinity-aware on Linux), for onnxruntime's intra-op pool."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# "[ONNXRuntimeError] : 1 : FAIL : " and "/onnxruntime_src/.../model.cc:256 onnxruntime::Model::
# Model(onnx::ModelProto&&, ...) ": where in onnxruntime's C++ it failed, which users cannot use.
_ORT_PREFIX = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : ")
_ORT_WHERE = re.compile(r"(\S*?)/\S+\.(?:cc|cpp|h):\d+ [\w:~<>]+\([^)]*\)\s*")


def _first_line(exc: BaseException) -> str:
    """onnxruntime's reason without its C++ file, line and signature, on one line."""
    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
    text = _ORT_WHERE.sub(r"\1 ", _ORT_PREFIX.sub("", text))
    return text.strip() or type(exc).__name__


def check_output(out: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """(N, H, W) probabilities from a model output, or ``ModelContractError`` when the output is
    not (N, 1, H, W) float probabilities for an (N, 3, H, W) input. NaN/inf are left for the
    caller to fail per photo (one bad photo is not a bad model)."""
    n, _, h, w = in_shape
    out = np.asarray(out)
    if out.shape != (n, 1, h, w) or not np.issubdtype(out.dtype, np.floating):
        raise ModelContractError(
            f"the model's output is {out.dtype} {list(out.shape)} for an input of "
            f"{[n, 3, h, w]}; a Peel segmenter returns float32 {[n, 1, h, w]}"
        )
    finite = out[np.isfinite(out)]
    if finite.size and (finite.min() < -1e-3 or finite.max() > 1 + 1e-3):
        raise ModelContractError(
            f"the model's output is not a probability (values from {finite.min():.3g} to "
            f"{finite.max():.3g}; expected 0 to 1: is the sigmoid missing?)"
        )
    return out[:, 0]


class SegmenterSession:
    """A Peel segmenter loaded in onnxruntime.

    ``provider`` is what runs (``CUDAExecutionProvider`` or ``CPUExecutionProvider``);
    ``warning`` is set when the request could not be honoured (CUDA asked for, CPU running).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        device: str = "auto",
        threads: int | None = None,
        device_id: int = 0,
    ) -> None:
        device = device.lower()
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r} ({', '.join(DEVICES)})")
        self.path = Path(model_path)
        refusal = model_path_problem(self.path)
        if refusal is not None:
            raise ModelLoadError(refusal)
        self.warning: str | None = None

        want_cuda = device == "cuda" or (device == "auto" and _cuda_usable())
        providers: list[str | tuple[str, dict[str, str]]] = [CPU]
        if want_cuda:
            _preload_cuda_libraries()
            # HEURISTIC: exhaustive cuDNN search re-runs for every new input shape, and a folder
            # of photos brings many shapes.
            providers = [
                (CUDA, {"cudnn_conv_algo_search": "HEURISTIC", "device_id": str(device_id)}), CPU
            ]

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # onnxruntime's own warnings would flood the console
        # Idle intra-op threads would spin for work and steal the cores the decode/encode threads
        # need (measured: ~15% more img/s on 2 cores with spinning off).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                os.fspath(self.path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise ModelLoadError(
                f"{model_path}: not a loadable ONNX model ({_first_line(exc)})"
            ) from exc

        try:
            props = self._session.get_modelmeta().custom_metadata_map
            self.metadata = ModelMetadata.from_props(props, where=str(model_path))
        except ModelMetadataError as exc:
            raise ModelLoadError(str(exc)) from exc
        if self.metadata.normalisation != NORMALISATION:
            raise ModelLoadError(
                f"{model_path}: unsupported input normalisation {self.metadata.normalisation!r}"
            )
        self._check_signature()

        self.provider = self._session.get_providers()[0]
        if want_cuda and self.provider != CUDA:
            self.warning = (
                "CUDA was requested but onnxruntime could not use it (missing CUDA/cuDNN "
                "libraries or no GPU); running on the CPU"
            )
            log.warning(self.warning)
        log.info("segmenter %s runs on %s", self.path.name, self.describe())

    def _check_signature(self) -> None:
        """One float32 input ``image`` (N, 3, H, W) and one float32 output ``prob`` (N, 1, H, W),
        as documented; dynamic dimensions are named (strings) or unknown (None)."""
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        for role, args, name, channels in (("input", inputs, INPUT_NAME, 3),
                                           ("output", outputs, OUTPUT_NAME, 1)):
            if len(args) != 1 or args[0].name != name:
                names = ", ".join(a.name for a in args) or "none"
                raise ModelLoadError(f"{self.path}: expected one {role} named {name!r}, "
                                     f"the model has: {names}")
            arg = args[0]
            shape = list(arg.shape)
            wrong_channels = len(shape) == 4 and isinstance(shape[1], int) and shape[1] != channels
            if arg.type != "tensor(float)" or len(shape) != 4 or wrong_channels:
                raise ModelLoadError(
                    f"{self.path}: {role} {name!r} is {arg.type} {shape}; expected "
                    f"tensor(float) [N, {channels}, H, W]"
                )

    @property
    def size(self) -> int:
        return self.metadata.size

    @property
    def stride(self) -> int:
        return self.metadata.stride

    def describe(self) -> str:
        if self.provider == CPU:
            threads = self._session.get_session_options().intra_op_num_threads
            return f"onnxruntime {CPU} ({threads} threads)"
        return f"onnxruntime {self.provider}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 in [-1, 1], H and W multiples of ``stride`` -> (N, H, W) probs."""
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W), got {batch.shape}")
        h, w = batch.shape[2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f"height and width must be multiples of {self.stride}, got {h}x{w}")
        x = np.ascontiguousarray(batch, dtype=np.float32)
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        return check_output(out, x.shape)

    def predict_soft(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Soft masks (float32 [0, 1], each at its photo's size) for uint8 RGB photos, one by one."""
        out = []
        for rgb in images:
            x, resized = prepare(rgb, self.size, self.stride)
            out.append(finish(self.run(x[None])[0], resized, rgb.shape[:2]))
        return out
