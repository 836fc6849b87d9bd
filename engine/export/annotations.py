"""Masks as annotations a labelling tool or a training pipeline loads: COCO, LabelMe, YOLO.

Each photo's thresholded mask becomes objects (``engine.export.polygons``: one per connected
component, specks dropped, outlines simplified at ``TOLERANCE_PX``), written in one of:

- ``coco`` / ``coco-rle``: one COCO instance-segmentation file for the folder,
  ``OUT_DIR/coco.json`` (polygons) or ``OUT_DIR/coco-rle.json`` (compressed RLE, lossless, holes
  kept); one category ``object``, ``iscrowd`` 0, ``bbox`` and ``area`` per object, image sizes at
  the photo's displayed orientation, ``file_name`` relative to IN_DIR.
- ``labelme``: ``OUT_DIR/NAME.json`` per photo in the LabelMe 5 layout with X-AnyLabeling's
  shape fields, ``imagePath`` relative to the JSON file, ``imageData`` null.
- ``yolo``: ``OUT_DIR/NAME.txt`` per photo, one ``0 x1 y1 x2 y2 ...`` line per object
  (coordinates divided by the photo's width and height), and ``OUT_DIR/classes.txt``.

Resuming and shards work as for the PNG formats because every photo still gets its own file,
written atomically: for COCO it is a fragment under ``OUT_DIR/.peel-coco/`` (or
``.peel-coco-rle/``), and every run ends by merging all the fragments present into the COCO
file. Shards writing into one OUT_DIR therefore leave a complete file after the last one ends;
shards on separate machines merge by copying their OUT_DIRs together and running the same
command once more without ``--shard`` (every photo is done, so it only merges).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import __version__
from engine.atomic import write_text
from engine.export.jobs import Job
from engine.export.polygons import (
    component_full_mask,
    components,
    outline,
    polygon_area,
    polygon_bbox,
    rle_encode,
)

log = logging.getLogger(__name__)

ANNOTATION_FORMATS = ("coco", "coco-rle", "labelme", "yolo")
COCO_FILES = {"coco": "coco.json", "coco-rle": "coco-rle.json"}
LABEL = "object"
# The LabelMe file layout this follows (labelme warns when the major version differs from its own).
LABELME_VERSION = "5.5.0"
DECIMALS = 2  # vertex coordinates in pixels: a hundredth is far below the simplification


@dataclass(frozen=True)
class AnnotationJob(Job):
    """A photo whose output is an annotation: ``out`` is its file (or COCO fragment)."""

    format: str = "coco"
    photo: str = ""  # the photo's path relative to IN_DIR, with / separators


def fragment_dir(out_dir: Path, fmt: str) -> Path:
    return out_dir / f".peel-{fmt}"


def coco_path(out_dir: str | os.PathLike[str], fmt: str) -> Path | None:
    """Where the folder's COCO file goes; None for the per-photo formats."""
    name = COCO_FILES.get(fmt)
    return Path(out_dir) / name if name else None


def retarget(job: Job, fmt: str, in_dir: Path, out_dir: Path) -> Job:
    """The job with its annotation output path (jobs are planned with ``.png`` outputs, so the
    shard a photo falls in does not depend on the format)."""
    if fmt not in ANNOTATION_FORMATS:
        return job
    rel = job.out.relative_to(out_dir)
    if fmt in COCO_FILES:
        out = fragment_dir(out_dir, fmt) / rel.with_suffix(".json")
    else:
        out = job.out.with_suffix(".json" if fmt == "labelme" else ".txt")
    return AnnotationJob(job.src, out, fmt, job.src.relative_to(in_dir).as_posix())


def encode_annotation(job: AnnotationJob, mask: np.ndarray) -> bytes:
    """The file content for one photo's boolean mask (photo-sized, displayed orientation)."""
    h, w = mask.shape
    found = components(mask)
    if job.format == "labelme":
        text = json.dumps(_labelme(job, found, h, w), indent=2)
    elif job.format == "yolo":
        text = "".join(_yolo_line(outline(c), w, h) for c in found)
    elif job.format in COCO_FILES:
        objects = [_coco_object(c, job.format == "coco-rle", (h, w)) for c in found]
        text = json.dumps({"file_name": job.photo, "width": w, "height": h, "objects": objects})
    else:
        raise ValueError(f"not an annotation format: {job.format!r}")
    return text.encode("utf-8")


def _points(points: np.ndarray) -> list[list[float]]:
    return np.round(points, DECIMALS).tolist()


def _labelme(job: AnnotationJob, found: list, h: int, w: int) -> dict[str, object]:
    json_dir = os.path.abspath(job.out.parent)
    try:
        image_path = Path(os.path.relpath(os.path.abspath(job.src), json_dir)).as_posix()
    except ValueError:  # another drive (Windows): only an absolute path reaches it
        image_path = Path(os.path.abspath(job.src)).as_posix()
    shapes = [
        {
            "label": LABEL, "score": None, "points": _points(outline(c)), "group_id": None,
            "description": "", "difficult": False, "shape_type": "polygon", "flags": {},
            "attributes": {}, "kie_linking": [],
        }
        for c in found
    ]
    return {
        "version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image_path,
        "imageData": None, "imageHeight": h, "imageWidth": w,
    }


def _yolo_line(points: np.ndarray, w: int, h: int) -> str:
    scaled = np.clip(points / (w, h), 0.0, 1.0).ravel()
    return "0 " + " ".join(f"{v:.6f}" for v in scaled) + "\n"


def _coco_object(component, rle: bool, shape: tuple[int, int]) -> dict[str, object]:
    if rle:
        x, y, bw, bh = component.bbox
        return {"segmentation": rle_encode(component_full_mask(component, shape)),
                "area": component.area, "bbox": [x, y, bw, bh]}
    points = outline(component)
    return {"segmentation": [np.round(points, DECIMALS).ravel().tolist()],
            "area": round(polygon_area(points), DECIMALS),
            "bbox": [round(v, DECIMALS) for v in polygon_bbox(points)]}


def finish(fmt: str, out_dir: Path, in_dir: Path) -> Path | None:
    """After an export: merge the COCO fragments; write YOLO's ``classes.txt``."""
    if fmt == "yolo":
        classes = out_dir / "classes.txt"
        # A photo named classes.jpg owns that name: its labels must not be overwritten.
        if not classes.exists() or classes.read_text(encoding="utf-8") == LABEL + "\n":
            write_text(classes, LABEL + "\n")
        else:
            log.warning("%s holds a photo's labels; the class list (%s) is not written",
                        classes, LABEL)
        return None
    target = coco_path(out_dir, fmt)
    if target is None:
        return None
    return merge_coco(fragment_dir(out_dir, fmt), target, in_dir.name)


def merge_coco(fragments: Path, target: Path, source_name: str) -> Path:
    """Every fragment under ``fragments`` (all shards' photos) as one COCO file at ``target``.

    A fragment that cannot be read is deleted with a warning, so that the next run redoes its
    photo instead of skipping it forever.
    """
    records = []
    for path in sorted(fragments.rglob("*.json")) if fragments.is_dir() else []:
        if path.name.startswith("."):
            continue  # a temp file of a write in progress or a killed one
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            records.append((str(record["file_name"]), record))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("removing unreadable fragment %s (its photo is redone next run): %s",
                        path, exc)
            path.unlink(missing_ok=True)
    records.sort(key=lambda r: r[0])
    images, annotations = [], []
    for image_id, (name, record) in enumerate(records, start=1):
        images.append({"id": image_id, "file_name": name, "width": record["width"],
                       "height": record["height"]})
        for obj in record["objects"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": 1, "iscrowd": 0, **obj})
    coco = {
        "info": {"description": f"Peel masks of {source_name}", "version": __version__},
        "licenses": [],
        "categories": [{"id": 1, "name": LABEL, "supercategory": LABEL}],
        "images": images,
        "annotations": annotations,
    }
    for stale in target.parent.glob(f".{target.name}.*"):  # a merge killed mid-write
        stale.unlink(missing_ok=True)
    write_text(target, json.dumps(coco))
    log.info("wrote %s: %d photos, %d objects", target, len(images), len(annotations))
    return target

