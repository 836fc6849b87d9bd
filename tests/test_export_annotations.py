"""Annotation formats of ``peel segment``: COCO (read back by pycocotools), LabelMe /
X-AnyLabeling, YOLO-seg; each checked against the PNG masks of the same model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from export_helpers import exported_run, shapes_photo

from engine.cli.main import main
from engine.export.masks import ExportOptions, export_masks
from engine.export.polygons import components, rle_encode
from engine.imageio import read_rgb

pycocotools = pytest.importorskip("pycocotools", reason="pycocotools is in the test extra")
from pycocotools.coco import COCO  # noqa: E402

# X-AnyLabeling's documented label file (docs/en/user_guide.md, "Saving Label Data") and the
# shape fields of its "Creating Objects" table; LabelMe 5 files carry a subset of the same keys.
XANY_TOP = {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"}
XANY_SHAPE = {"label", "score", "points", "group_id", "description", "difficult", "shape_type",
              "flags", "attributes", "kie_linking"}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_run(tmp_path_factory) / "segmenter.onnx"


class FittedRunner:
    """A width-8 UNet fitted in seconds to the demo folder's exact masks, run in torch.

    The formats are checked against PNG masks of the same model, so the model only needs to
    draw object-like masks (solid, few components), as a trained segmenter does; an untrained
    net draws speckled noise, where any polygon export must differ from the pixels.
    """

    size = 64

    def __init__(self, folder: Path) -> None:
        import torch

        from engine.nets.unet import UNet, UNetConfig

        torch.manual_seed(0)
        self.net = UNet(UNetConfig(width=8, depth=3))
        photos = sorted(folder.glob("*.png"))
        x = np.stack([read_rgb(p) for p in photos]).astype(np.float32) / 127.5 - 1.0
        y = np.stack([cv2.imread(str(folder / "masks" / p.name), cv2.IMREAD_GRAYSCALE) > 127
                      for p in photos]).astype(np.float32)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)
        yt = torch.from_numpy(y)[:, None]
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.net.train()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # on a busy shared machine 2 threads took 8x longer
        try:
            for _ in range(100):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(xt), yt)
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            torch.set_num_threads(threads)
        self.net.eval()
        self.stride = self.net.stride

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return torch.sigmoid(self.net(torch.from_numpy(batch)))[:, 0].numpy()

    def describe(self) -> str:
        return "torch cpu (test)"


@pytest.fixture(scope="module")
def session(_tiny_demo_master: Path) -> FittedRunner:
    return FittedRunner(_tiny_demo_master)


@pytest.fixture
def photos(tiny_demo_folder: Path) -> Path:
    """The demo folder plus a photo whose EXIF orientation turns it tall when displayed."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(shapes_photo(40, 90)).save(tiny_demo_folder / "rotated.jpg", quality=95,
                                                exif=exif)
    return tiny_demo_folder


def png_masks(session, photos: Path, out: Path) -> dict[str, np.ndarray]:
    summary = export_masks(session, photos, out, ExportOptions(format="mask"))
    assert summary.failed == 0
    return {p.stem: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in out.glob("*.png")}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def check_against_png(drawn: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> list[float]:
    assert sorted(drawn) == sorted(truth)
    scores = []
    for stem, mask in truth.items():
        assert drawn[stem].shape == mask.shape, stem  # photo size, displayed orientation
        scores.append(iou(drawn[stem], mask))
    return scores


def test_coco_polygons_load_in_pycocotools_and_match_the_png_masks(
    photos: Path, session, tmp_path: Path
) -> None:
    truth = png_masks(session, photos, tmp_path / "png")
    assert sum(m.any() for m in truth.values()) >= 8, "the model should find objects"
    out = tmp_path / "coco"
    assert export_masks(session, photos, out, ExportOptions(format="coco")).written == 13
    coco = COCO(str(out / "coco.json"))
    assert len(coco.getImgIds()) == len(truth) == 13
    drawn = {}
    for image in coco.loadImgs(coco.getImgIds()):
        assert (photos / image["file_name"]).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        mask = np.zeros((image["height"], image["width"]), bool)
        for ann in anns:
            assert ann["iscrowd"] == 0 and ann["category_id"] == 1 and ann["area"] > 0
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"]
            assert len(ann["segmentation"]) == 1 and len(ann["segmentation"][0]) >= 6
            mask |= coco.annToMask(ann).astype(bool)
        drawn[Path(image["file_name"]).stem] = mask
    assert coco.imgs[coco.getImgIds()[-1]]["file_name"] == "rotated.jpg"
    assert drawn["rotated"].shape == read_rgb(photos / "rotated.jpg").shape[:2] == (90, 40)
    scores = check_against_png(drawn, truth)
    assert min(scores) >= 0.95, scores


def test_coco_rle_is_the_png_mask_without_specks(photos: Path, session, tmp_path: Path) -> None:
    truth = png_masks(session, photos, tmp_path / "png")
    out = tmp_path / "rle"
    export_masks(session, photos, out, ExportOptions(format="coco-rle"))
    coco = COCO(str(out / "coco-rle.json"))
    for image in coco.loadImgs(coco.getImgIds()):
        mask = np.zeros((image["height"], image["width"]), bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            mask |= coco.annToMask(ann).astype(bool)
        expected = np.zeros_like(mask)
        for c in components(truth[Path(image["file_name"]).stem]):
            expected[c.y:c.y + c.mask.shape[0], c.x:c.x + c.mask.shape[1]] |= c.mask
        assert np.array_equal(mask, expected), image["file_name"]


def test_rle_text_is_pycocotools_own(tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for trial in range(50):
        h, w = rng.integers(1, 60, 2)
        mask = rng.random((h, w)) < rng.random()
        if trial % 2:
            mask = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2) > 0.5
        ours = rle_encode(mask)
        theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"].decode() and ours["size"] == [h, w]


def test_specks_are_dropped_and_each_component_is_an_object() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10:40, 10:40] = True
    mask[60:90, 50:95] = True
    mask[95, 5] = True  # one pixel: a speck
    found = components(mask)
    assert [c.area for c in found] == [30 * 45, 30 * 30]
    assert found[1].bbox == (10, 10, 30, 30)


def test_sharded_coco_exports_merge_and_a_rerun_only_merges(
    photos: Path, session, tmp_path: Path
) -> None:
    out = tmp_path / "coco"
    first = export_masks(session, photos, out, ExportOptions(format="coco", shard=(1, 2)))
    names_1 = {i["file_name"] for i in json.loads((out / "coco.json").read_text())["images"]}
    assert len(names_1) == first.written < 13
    second = export_masks(session, photos, out, ExportOptions(format="coco", shard=(2, 2)))
    merged = (out / "coco.json").read_bytes()
    images = json.loads(merged)["images"]
    assert len(images) == first.written + second.written == 13
    assert [i["id"] for i in images] == list(range(1, 14))
    assert names_1 < {i["file_name"] for i in images}
    again = export_masks(session, photos, out, ExportOptions(format="coco"))
    assert again.written == 0 and again.skipped == 13
    assert (out / "coco.json").read_bytes() == merged


def test_labelme_files_follow_x_anylabeling_and_point_at_the_photo(
    photos: Path, session, tmp_path: Path
) -> None:
    from PIL import Image, ImageDraw  # labelme itself draws polygons with PIL

    truth = png_masks(session, photos, tmp_path / "png")
    out = tmp_path / "labelme"
    summary = export_masks(session, photos, out, ExportOptions(format="labelme"))
    assert summary.written == 13
    drawn = {}
    for path in sorted(out.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert set(data) == XANY_TOP and data["imageData"] is None and data["flags"] == {}
        assert (path.parent / data["imagePath"]).resolve() == next(photos.glob(path.stem + ".*")).resolve()
        h, w = data["imageHeight"], data["imageWidth"]
        assert (h, w) == read_rgb(path.parent / data["imagePath"]).shape[:2]
        canvas = Image.new("L", (w, h), 0)
        for shape in data["shapes"]:
            assert set(shape) == XANY_SHAPE
            assert shape["shape_type"] == "polygon" and shape["label"] == "object"
            assert len(shape["points"]) >= 3
            ImageDraw.Draw(canvas).polygon([tuple(p) for p in shape["points"]], fill=1, outline=1)
        drawn[path.stem] = np.asarray(canvas, bool)
    scores = check_against_png(drawn, truth)
    assert min(scores) >= 0.95, scores


def test_yolo_lines_draw_back_the_masks(photos: Path, session, tmp_path: Path) -> None:
    truth = png_masks(session, photos, tmp_path / "png")
    out = tmp_path / "yolo"
    export_masks(session, photos, out, ExportOptions(format="yolo"))
    assert (out / "classes.txt").read_text() == "object\n"
    drawn = {}
    for path in sorted(out.glob("*.txt")):
        if path.name == "classes.txt":
            continue
        h, w = truth[path.stem].shape
        canvas = np.zeros((h, w), np.uint8)
        for line in path.read_text().splitlines():
            cls, *values = line.split()
            coords = np.array(values, float).reshape(-1, 2)
            assert cls == "0" and len(coords) >= 3
            assert coords.min() >= 0.0 and coords.max() <= 1.0
            # Ultralytics' polygon-to-mask: scale to pixels, truncate, fill with OpenCV.
            cv2.fillPoly(canvas, [(coords * (w, h)).astype(np.int32)], 1)
        drawn[path.stem] = canvas.astype(bool)
    scores = check_against_png(drawn, truth)
    assert min(scores) >= 0.95, scores


def test_segment_cli_writes_and_names_the_coco_file(
    photos: Path, model_path: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "coco"
    argv = ["segment", "--model", str(model_path), str(photos), str(out), "--format", "coco",
            "--device", "cpu"]
    assert main(argv) == 0
    assert f"COCO annotations of every photo done so far: {out / 'coco.json'}" in capsys.readouterr().out
    assert len(COCO(str(out / "coco.json")).getImgIds()) == 13
    assert len(list((out / ".peel-coco").glob("*.json"))) == 13


class DiscRunner:
    """A stand-in model: a centred disc on every photo."""

    size = 64
    stride = 8

    def run(self, batch: np.ndarray) -> np.ndarray:
        n, _, h, w = batch.shape
        yy, xx = np.mgrid[:h, :w]
        disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2).astype(np.float32)
        return np.repeat(disc[None], n, axis=0)

    def describe(self) -> str:
        return "disc (test)"


def test_yolo_class_list_never_overwrites_a_photos_labels(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("classes.png", "other.png"):
        cv2.imwrite(str(src / name), shapes_photo(64, 64))
    out = tmp_path / "yolo"
    assert export_masks(DiscRunner(), src, out, ExportOptions(format="yolo")).written == 2
    labels = (out / "classes.txt").read_text()
    assert labels.startswith("0 ") and labels == (out / "other.txt").read_text()
