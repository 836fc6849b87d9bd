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
    p.add_argument("--out", type=Path, metavar="FILE", help="output file (default: segmenter.onnx "
                   "beside the .pt; segmenter-rembg.onnx with --target rembg)")
    p.add_argument(
        "--target", choices=("peel", "rembg"), default="peel",
        help="peel: the model peel segment runs (default); rembg: a second file for rembg's "
        "u2net_custom session, with rembg's 320x320 ImageNet-normalised input converted to "
        "this segmenter's size and normalisation inside the graph",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.cli.errors import CliError
    from engine.export.onnx import OnnxExportError, export_onnx
    from engine.export.rembg import export_rembg
    from engine.segmenter.model import SegmenterLoadError

    try:
        if args.target == "rembg":
            report = export_rembg(args.source, args.out)
        else:
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
    if args.target == "rembg":
        print(
            "  rembg loads custom models only from its model folder ($U2NET_HOME, else "
            "~/.rembg):\n"
            f"  mkdir -p ~/.rembg && cp '{report.path}' ~/.rembg/\n"
            f"  rembg p -om -m u2net_custom -x '{{\"model_path\": \"~/.rembg/{report.path.name}\"}}' "
            "PHOTOS/ MASKS/"
        )
    return 0
