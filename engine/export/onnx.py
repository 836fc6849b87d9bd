"""Exporting ``segmenter.pt`` to one self-contained ONNX file, checked against torch before it lands.

Decisions, and why:
- The sigmoid is inside the graph: the output is a probability, so no runtime can forget it or
  apply it twice, and thresholds mean the same everywhere.
- Batch, height and width are dynamic (``torch.export`` dims); height and width must be multiples
  of the UNet's stride (the graph is built that way and the metadata says so). Padding stays in
  the runtime (``engine.export.sessions``) because reflect padding + cropping + resizing back
  is image handling, not network.
- One file, weights inline: a model the user copies elsewhere must not silently lose a
  ``.data`` sidecar. UNets are a few MB, far below protobuf's 2 GB limit.
- Parity with torch is measured on the written bytes at a few shapes (including batch > 1 and a
  non-square size) and the export fails above ``PARITY_TOLERANCE``; the file is only renamed into
  place after it passes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from engine import __version__
from engine.atomic import atomic_path, remove_stale_temps, unwritable_reason
from engine.export.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from engine.nets.unet import UNet
from engine.segmenter.model import NORMALISATION, SegmenterInfo, load_segmenter

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
SEGMENTER_FILE = "segmenter.pt"


class OnnxExportError(Exception):
    """The export failed or the exported model disagrees with torch; nothing was written."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    metadata: ModelMetadata
    parity: dict[str, float] = field(default_factory=dict)  # "NxHxW" -> max |onnx - torch|
    bytes: int = 0
    seconds: float = 0.0

    @property
    def max_abs_diff(self) -> float:
        return max(self.parity.values(), default=0.0)


class _WithSigmoid(torch.nn.Module):
    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(image))


def resolve_segmenter(source: str | os.PathLike[str]) -> Path:
    """Accept a run folder (holding ``segmenter.pt``) or a ``.pt`` file."""
    path = Path(source)
    if path.is_dir():
        path = path / SEGMENTER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {SEGMENTER_FILE} in {source} (train a segmenter first)")
    elif not path.is_file():
        raise FileNotFoundError(f"no such run folder or segmenter file: {source}")
    return path


def check_output(out_path: Path) -> None:
    """Refuse an output that cannot be written before the export's work (one line, not the
    traceback of the final rename): an existing folder, or a folder no file can be made in."""
    if out_path.is_dir():
        raise OnnxExportError(f"{out_path} is a folder; give the file to write, e.g. "
                              f"{out_path / 'segmenter.onnx'}")
    why = unwritable_reason(out_path.parent)
    if why is not None:
        raise OnnxExportError(f"cannot write {out_path}: {why}")


def default_output(segmenter: Path) -> Path:
    return segmenter.with_suffix(".onnx")


def parity_shapes(size: int, stride: int) -> list[tuple[int, int, int]]:
    """Shapes for the parity check: the training size, and a wider non-square batch of 2."""
    side = max(stride, -(-size // stride) * stride)
    return [(1, side, side), (2, side + stride, 2 * side)]


def _source_name(info: SegmenterInfo) -> str:
    # Only the folder's name: a full path would leak the user's directory layout into the file.
    return Path(info.source).name or info.source


def export_onnx(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    opset: int | None = None,
) -> ExportReport:
    """Export a segmenter to ONNX at ``out`` (default: beside the ``.pt``) and check parity."""
    started = time.perf_counter()
    pt_path = resolve_segmenter(source)
    out_path = Path(out) if out is not None else default_output(pt_path)
    check_output(out_path)
    net, info = load_segmenter(pt_path, "cpu")
    net.eval()
    model = _WithSigmoid(net).eval()
    stride = net.stride
    meta = ModelMetadata(
        size=info.size,
        stride=stride,
        normalisation=NORMALISATION,
        method=info.method,
        source=_source_name(info),
        version=__version__,
    )

    side = parity_shapes(info.size, stride)[0][1]
    example = torch.zeros(1, 3, side, side)
    batch = torch.export.Dim("batch", min=1)
    h_blocks = torch.export.Dim("h_blocks", min=1)
    w_blocks = torch.export.Dim("w_blocks", min=1)
    dynamic = {"image": {0: batch, 2: stride * h_blocks, 3: stride * w_blocks}}
    proto = export_proto(
        model, example,
        f"Peel segmenter ({info.method}, trained on '{meta.source}' at {info.size} px). "
        "Output is a foreground probability.",
        meta.to_props(),
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=dynamic,
        opset_version=opset,
    )

    remove_stale_temps(out_path)  # a kill -9 of an earlier export
    with atomic_path(out_path) as tmp:
        onnx.save_model(proto, os.fspath(tmp), save_as_external_data=False)
        if any(p.name.startswith(tmp.name) and p != tmp for p in tmp.parent.iterdir()):
            raise OnnxExportError("the exporter wrote an external data file; expected one file")
        onnx.checker.check_model(os.fspath(tmp))
        parity = _parity(model, tmp, meta)
        worst = max(parity.values())
        log.info("ONNX parity vs torch: %s", ", ".join(f"{k}: {v:.2e}" for k, v in parity.items()))
        if not worst <= PARITY_TOLERANCE:  # also catches NaN
            raise OnnxExportError(
                f"exported model disagrees with torch (max |diff| {worst:.3g} > "
                f"{PARITY_TOLERANCE:g}); nothing written"
            )
        size_bytes = tmp.stat().st_size
    return ExportReport(
        path=out_path,
        metadata=meta,
        parity=parity,
        bytes=size_bytes,
        seconds=time.perf_counter() - started,
    )


def export_proto(model: torch.nn.Module, example: torch.Tensor, doc: str, props: dict[str, str],
                 **export_args: object) -> onnx.ModelProto:
    """``model`` as one self-contained ONNX proto (weights inline) labelled as Peel's: producer,
    ``doc`` and exactly ``props`` as its metadata. The exporter's many exception types become
    one ``OnnxExportError`` with a message a user can read."""
    try:
        with _quiet_exporter():
            program = torch.onnx.export(model, (example,), dynamo=True, external_data=False,
                                        verbose=False, **export_args)
    except Exception as exc:  # the exporter raises many types; the user needs one message
        raise OnnxExportError(f"torch.onnx.export failed: {exc}") from exc
    if program is None:
        raise OnnxExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    _inline_check(proto)
    proto.producer_name = "peel"
    proto.producer_version = __version__
    proto.doc_string = doc
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's optimiser logs dozens of INFO lines per export; users need none of them."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _inline_check(proto: onnx.ModelProto) -> None:
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise OnnxExportError(f"weight {init.name!r} is stored externally; expected one file")


def _parity(model: torch.nn.Module, path: Path, meta: ModelMetadata) -> dict[str, float]:
    import onnxruntime as ort

    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    result: dict[str, float] = {}
    for n, h, w in parity_shapes(meta.size, meta.stride):
        x = rng.uniform(-1.0, 1.0, size=(n, 3, h, w)).astype(np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if got.shape != expected.shape:
            raise OnnxExportError(f"output shape {got.shape} != torch {expected.shape} at {n}x{h}x{w}")
        result[f"{n}x{h}x{w}"] = float(np.max(np.abs(got - expected)))
    return result
