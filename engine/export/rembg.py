"""A Peel segmenter as a model rembg runs as it is (``rembg p -m u2net_custom``).

rembg's ``u2net_custom`` session (rembg 2.0.x) prepares every photo the way U^2-Net wants:
resized (squashed) to 320x320 with Lanczos, divided by the photo's largest value, normalised with
ImageNet's mean and standard deviation; it takes channel 0 of the first output, stretches it so
its minimum is 0 and its maximum 1, and resizes that to the photo. A Peel ``segmenter.onnx`` fed
this way sees the wrong value range at 5x its training size, and scored IoU 0.21 where
``peel segment`` scored 0.56 (issue 17). This export puts the conversion inside the graph:

    image (1, 3, 320, 320), ImageNet-normalised
      -> x * std + mean = RGB in [0, 1]  -> 2 x - 1 = Peel's [-1, 1]
      -> shrunk to the training size (area averaging), a multiple of the stride
      -> the segmenter, sigmoid  -> resized back to 320x320: a probability in [0, 1]

What stays different from ``peel segment``: rembg squashes the photo to a square (Peel keeps the
aspect ratio), divides by the photo's maximum instead of 255 (the same for photos with a white
or near-white pixel), and stretches the output, which moves the effective threshold when the
probabilities do not reach 0 and 1.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from engine import __version__
from engine.atomic import atomic_path
from engine.export.metadata import (
    KEY_FORMAT,
    KEY_METHOD,
    KEY_SIZE,
    KEY_SOURCE,
    KEY_VERSION,
    ModelMetadata,
)
from engine.export.onnx import (
    PARITY_TOLERANCE,
    ExportReport,
    OnnxExportError,
    _source_name,
    check_output,
    export_proto,
    resolve_segmenter,
)
from engine.segmenter.model import NORMALISATION, load_segmenter

REMBG_SIZE = 320
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Not Peel's own format: ``peel segment`` refuses this file instead of feeding it [-1, 1].
REMBG_FORMAT = "peel-rembg-u2net-custom-1"
REMBG_FILE = "segmenter-rembg.onnx"


class RembgAdapter(torch.nn.Module):
    """rembg's input in, a probability at rembg's size out, Peel's segmenter in between."""

    def __init__(self, net: torch.nn.Module, size: int, stride: int) -> None:
        super().__init__()
        self.net = net
        self.side = max(stride, -(-size // stride) * stride)  # the training size, stride-aligned
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image * self.std + self.mean) * 2.0 - 1.0
        # Area averaging, as ``peel segment`` shrinks photos (cv2.INTER_AREA), so that both see
        # the same pixels when the photo is square.
        k = max(1, REMBG_SIZE // self.side)
        if k * self.side != REMBG_SIZE:  # e.g. 128 px: 320 -> 256 first, then 2x2 averages
            x = F.interpolate(x, size=(k * self.side, k * self.side), mode="bilinear",
                              align_corners=False, antialias=True)
        if k > 1:
            x = F.avg_pool2d(x, k)
        prob = torch.sigmoid(self.net(x))
        return F.interpolate(prob, size=image.shape[-2:], mode="bilinear", align_corners=False)


def rembg_input(rgb: np.ndarray) -> np.ndarray:
    """What rembg feeds the model for an RGB photo (for parity checks and tests)."""
    from PIL import Image

    im = np.asarray(Image.fromarray(rgb).resize((REMBG_SIZE, REMBG_SIZE), Image.Resampling.LANCZOS))
    scaled = im / max(float(im.max()), 1e-6)
    x = (scaled - IMAGENET_MEAN) / IMAGENET_STD
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def export_rembg(
    source: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> ExportReport:
    """Write the rembg-ready ONNX file (default ``segmenter-rembg.onnx`` beside the ``.pt``)."""
    started = time.perf_counter()
    pt_path = resolve_segmenter(source)
    out_path = Path(out) if out is not None else pt_path.with_name(REMBG_FILE)
    check_output(out_path)
    net, info = load_segmenter(pt_path, "cpu")
    model = RembgAdapter(net.eval(), info.size, net.stride).eval()
    meta = ModelMetadata(size=info.size, stride=net.stride, normalisation=NORMALISATION,
                         method=info.method, source=_source_name(info), version=__version__)
    example = torch.zeros(1, 3, REMBG_SIZE, REMBG_SIZE)
    props = {KEY_FORMAT: REMBG_FORMAT, KEY_SIZE: str(info.size), KEY_METHOD: info.method,
             KEY_SOURCE: meta.source, KEY_VERSION: __version__}
    proto = export_proto(
        model, example,
        f"Peel segmenter ({info.method}, '{meta.source}', {info.size} px) for rembg's "
        "u2net_custom session: input 1x3x320x320 ImageNet-normalised RGB, output 1x1x320x320 "
        "foreground probability.",
        props, input_names=["input.1"], output_names=["mask"],
    )

    with atomic_path(out_path) as tmp:
        onnx.save_model(proto, os.fspath(tmp), save_as_external_data=False)
        onnx.checker.check_model(os.fspath(tmp))
        diff = _parity(model, tmp)
        if not diff <= PARITY_TOLERANCE:  # also catches NaN
            raise OnnxExportError(f"exported model disagrees with torch (max |diff| {diff:.3g} > "
                                  f"{PARITY_TOLERANCE:g}); nothing written")
        size_bytes = tmp.stat().st_size
    return ExportReport(path=out_path, metadata=meta, parity={f"1x{REMBG_SIZE}x{REMBG_SIZE}": diff},
                        bytes=size_bytes, seconds=time.perf_counter() - started)


def _parity(model: torch.nn.Module, path: Path) -> float:
    """Largest |onnxruntime - torch| on a rembg-prepared random photo."""
    import onnxruntime as ort

    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    rgb = np.random.default_rng(0).integers(0, 256, (240, 360, 3), dtype=np.uint8)
    x = rembg_input(rgb)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    if got.shape != expected.shape:
        raise OnnxExportError(f"output shape {got.shape} != torch {expected.shape}")
    return float(np.max(np.abs(got - expected)))
