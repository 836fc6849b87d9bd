"""``peel export-onnx RUN_DIR``: write the segmenter as one ONNX file, checked against torch."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-onnx",
        help="export a trained segmenter to a self-contained ONNX file",
        description="Export RUN_DIR/segmenter.pt (or a .pt file) to ONNX: one file, weights "
        "inline, sigmoid included (output = foreground probability), dynamic batch/height/width "
        "(height and width multiples of the stride stored in the metadata). The export is "
        "compared with torch at two shapes and fails if they differ by more than 1e-4.",
    )
    p.add_argument("source", type=Path, metavar="RUN_DIR", help="run folder with segmenter.pt, or a .pt file")
    p.add_argument("--out", type=Path, metavar="FILE", help="output file (default: segmenter.onnx beside the .pt)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.cli.errors import CliError
    from engine.export.onnx import OnnxExportError, export_onnx
    from engine.segmenter.model import SegmenterLoadError

    try:
        report = export_onnx(args.source, args.out)
    except (OnnxExportError, SegmenterLoadError) as exc:
        raise CliError(str(exc)) from exc
    meta = report.metadata
    parity = ", ".join(f"{shape}: {diff:.1e}" for shape, diff in report.parity.items())
    print(
        f"wrote {report.path} ({report.bytes / 1e6:.1f} MB) in {report.seconds:.1f} s\n"
        f"  method {meta.method}, trained on '{meta.source}' at {meta.size} px, stride {meta.stride}\n"
        f"  max |onnx - torch| on probabilities: {report.max_abs_diff:.1e} ({parity})"
    )
    return 0
