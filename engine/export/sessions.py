"""Running an exported segmenter with onnxruntime, and saying honestly where it runs.

One class owns the ``InferenceSession``: it reads the model's own metadata (training size,
stride, normalisation) so callers only hand it photos, picks the execution provider, and reports
the provider that *really* runs. onnxruntime-gpu silently falls back to the CPU when CUDA or cuDNN
cannot load, so the requested provider means nothing; ``session.get_providers()`` is the truth.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.export.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata, ModelMetadataError
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


def cpu_threads() -> int:
    """Cores this process may use (affinity-aware on Linux), for onnxruntime's intra-op pool."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


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
    ) -> None:
        device = device.lower()
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r} ({', '.join(DEVICES)})")
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelLoadError(f"{model_path}: no such model file (make one with peel export-onnx)")
        self.warning: str | None = None

        want_cuda = device == "cuda" or (device == "auto" and _cuda_usable())
        providers: list[str | tuple[str, dict[str, str]]] = [CPU]
        if want_cuda:
            _preload_cuda_libraries()
            # HEURISTIC: exhaustive cuDNN search re-runs for every new input shape, and a folder
            # of photos brings many shapes.
            providers = [(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU]

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
            raise ModelLoadError(f"{model_path}: not a loadable ONNX model ({exc})") from exc

        try:
            props = self._session.get_modelmeta().custom_metadata_map
            self.metadata = ModelMetadata.from_props(props, where=str(model_path))
        except ModelMetadataError as exc:
            raise ModelLoadError(str(exc)) from exc
        if self.metadata.normalisation != NORMALISATION:
            raise ModelLoadError(
                f"{model_path}: unsupported input normalisation {self.metadata.normalisation!r}"
            )

        self.provider = self._session.get_providers()[0]
        if want_cuda and self.provider != CUDA:
            self.warning = (
                "CUDA was requested but onnxruntime could not use it (missing CUDA/cuDNN "
                "libraries or no GPU); running on the CPU"
            )
            log.warning(self.warning)
        log.info("segmenter %s runs on %s", self.path.name, self.describe())

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
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0][:, 0]

    def predict_soft(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Soft masks (float32 [0, 1], each at its photo's size) for uint8 RGB photos, one by one."""
        out = []
        for rgb in images:
            x, resized = prepare(rgb, self.size, self.stride)
            out.append(finish(self.run(x[None])[0], resized, rgb.shape[:2]))
        return out
