"""Help ▸ Quick start and Help ▸ About: how to begin, and what this install runs on (the version,
the torch device, the onnxruntime provider), which is what a bug report needs first."""

from __future__ import annotations

import html
from importlib import metadata


def version() -> str:
    try:
        return metadata.version("peel")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def about_text() -> str:
    from engine.device import describe, pick_device

    device, warning = pick_device("auto")
    try:
        import onnxruntime

        providers = ", ".join(onnxruntime.get_available_providers())
        ort = f"onnxruntime {onnxruntime.__version__}: {providers}"
    except ImportError as exc:
        ort = f"onnxruntime not available ({exc})"
    lines = [f"<b>Peel {html.escape(version())}</b>",
             "Learns to cut objects out of photos with no labels: a layered GAN, then a "
             "segmenter exported to ONNX.",
             f"Training device: {html.escape(describe(device))}"
             + (f" ({html.escape(warning)})" if warning else ""),
             f"Mask export: {html.escape(ort)}"]
    return "<br>".join(lines)


def quick_start_text() -> str:
    steps = [
        "<b>Choose a folder</b> of photos of one kind of thing (File ▸ Open photo folder, or "
        "drop it on the window). 50 photos or more; your files are never changed.",
        "<b>Start</b>. The defaults suit a CPU: PerturbGAN at 64 px for 20 minutes. The Live "
        "tab shows the generated layers (background, foreground, mask) and the losses of each "
        "stage.",
        "<b>Results</b> shows the masks on your photos once the first segmenter is trained; "
        "click a thumbnail to see that photo.",
        "<b>Export masks…</b> writes a mask per photo (next to the folder, in "
        "<i>&lt;folder&gt;-masks</i>); <b>Export ONNX…</b> writes the model.",
        "Stop keeps a checkpoint: Start resumes the run. File ▸ Open run folder shows any "
        "earlier run, also one trained with <i>peel train</i>.",
    ]
    return "<ol>" + "".join(f"<li>{s}</li>" for s in steps) + "</ol>"
