"""``peel export-onnx --target rembg``: rembg's own ``u2net_custom`` session runs the file and
draws the masks ``peel segment`` draws with the same segmenter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli.main import main
from engine.imageio import read_rgb

pytest.importorskip("rembg", reason="rembg is not installed (pip install 'rembg[cli]', no cpu extra)")

HORSES = Path(os.environ.get("PEEL_HORSES", "/work/shared/data/weizmann-horses/images"))
PHOTOS = 12
SIZE = 64


def rembg_command() -> list[str]:
    beside = Path(sys.executable).with_name("rembg")
    found = str(beside) if beside.is_file() else shutil.which("rembg")
    if found is None:
        pytest.skip("the rembg command is not installed (pip install 'rembg[cli]')")
    return [found]


def fit_label_free(photos: list[Path], out: Path) -> None:
    """A tiny trained segmenter with no labels: a width-8 UNet fitted to GrabCut's masks.

    It sees every photo both squashed to a square and centre-cropped, so its masks do not hinge
    on the aspect ratio: rembg squashes every photo to 320x320, ``peel segment`` keeps the aspect
    ratio, and a model that learnt one of the two would measure that, not the export.
    """
    import torch

    from engine.baselines.grabcut import grabcut_mask
    from engine.nets.unet import UNet, UNetConfig
    from engine.segmenter.model import save_segmenter

    def squash(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (SIZE, SIZE), interpolation=cv2.INTER_AREA)

    def centre(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        k = SIZE / min(h, w)
        a = cv2.resize(a, (max(SIZE, round(w * k)), max(SIZE, round(h * k))),
                       interpolation=cv2.INTER_AREA)
        y, x = (a.shape[0] - SIZE) // 2, (a.shape[1] - SIZE) // 2
        return a[y:y + SIZE, x:x + SIZE]

    xs, ys = [], []
    for path in photos:
        rgb = read_rgb(path)
        mask = grabcut_mask(rgb)
        for view in (squash, centre):
            xs.append(view(rgb).astype(np.float32) / 127.5 - 1.0)
            ys.append(view(mask) > 127)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2)
    y = torch.from_numpy(np.stack(ys)).float()[:, None]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny net on a shared CPU: one thread is several times faster
    try:
        torch.manual_seed(0)
        net = UNet(UNetConfig(width=8, depth=3))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(150):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    save_segmenter(out, net.eval(), SIZE, "grabcut-fit", "photos")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos (the first Weizmann horses) when present, else the 128 px demo photos."""
    folder = tmp_path_factory.mktemp("rembg-photos")
    if HORSES.is_dir():
        for path in sorted(HORSES.glob("*.jpg"))[:PHOTOS]:
            shutil.copy(path, folder / path.name)
    else:
        from engine.demo import make_demo_folder

        make_demo_folder(folder / "demo", count=PHOTOS, size=128, seed=3)
        for path in (folder / "demo").glob("*.png"):
            shutil.move(path, folder / path.name)
        shutil.rmtree(folder / "demo")
    return folder


@pytest.fixture(scope="module")
def rembg_masks(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Peel's masks and rembg's masks of the photos, with the same label-free segmenter."""
    base = tmp_path_factory.mktemp("rembg")
    run = base / "run"
    run.mkdir()
    fit_label_free(sorted(photo_folder.iterdir()), run / "segmenter.pt")
    assert main(["export-onnx", str(run)]) == 0
    assert main(["export-onnx", str(run), "--target", "rembg"]) == 0
    home = base / "u2net-home"  # rembg loads custom models only from inside its model folder
    home.mkdir()
    shutil.copy(run / "segmenter-rembg.onnx", home / "peel.onnx")
    assert main(["segment", "--model", str(run / "segmenter.onnx"), str(photo_folder),
                 str(base / "peel"), "--device", "cpu"]) == 0
    env = {**os.environ, "U2NET_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*rembg_command(), "p", "-om", "-m", "u2net_custom",
         "-x", json.dumps({"model_path": str(home / "peel.onnx")}),
         str(photo_folder), str(base / "rembg")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"run": run, "peel": base / "peel", "rembg": base / "rembg", "photos": photo_folder}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def load_mask(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img > 127


@pytest.mark.slow
def test_rembg_runs_the_export_and_agrees_with_peel_segment(rembg_masks) -> None:
    scores = []
    for photo in sorted(rembg_masks["photos"].iterdir()):
        ours = load_mask(rembg_masks["peel"] / f"{photo.stem}.png")
        theirs = load_mask(rembg_masks["rembg"] / f"{photo.stem}.png")
        assert theirs.shape == ours.shape == read_rgb(photo).shape[:2]
        scores.append(iou(ours, theirs))
    assert len(scores) == PHOTOS
    # The masks differ where rembg's squash to a square changes what the net sees.
    assert float(np.mean(scores)) >= 0.90, np.round(scores, 3)


@pytest.mark.slow
def test_the_graph_reproduces_peel_on_rembgs_input(rembg_masks, tmp_path: Path) -> None:
    """Given the photo rembg really feeds (squashed to 320x320 with Lanczos), the rembg file and
    ``peel segment`` agree almost exactly: what remains above is the squash, not the export."""
    from PIL import Image

    squashed = tmp_path / "squashed"
    squashed.mkdir()
    for photo in rembg_masks["photos"].iterdir():
        img = Image.fromarray(read_rgb(photo)).resize((320, 320), Image.Resampling.LANCZOS)
        img.save(squashed / f"{photo.stem}.png")
    assert main(["segment", "--model", str(rembg_masks["run"] / "segmenter.onnx"),
                 str(squashed), str(tmp_path / "peel"), "--device", "cpu"]) == 0
    scores = []
    for photo in sorted(rembg_masks["photos"].iterdir()):
        theirs = load_mask(rembg_masks["rembg"] / f"{photo.stem}.png").astype(np.uint8)
        theirs = cv2.resize(theirs, (320, 320), interpolation=cv2.INTER_NEAREST) > 0
        scores.append(iou(load_mask(tmp_path / "peel" / f"{photo.stem}.png"), theirs))
    assert min(scores) >= 0.9 and float(np.mean(scores)) >= 0.95, np.round(scores, 3)


def test_peel_segment_refuses_the_rembg_file(rembg_masks, tmp_path: Path, capsys) -> None:
    argv = ["segment", "--model", str(rembg_masks["run"] / "segmenter-rembg.onnx"),
            str(rembg_masks["photos"]), str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("peel segment: error: ") and "not a Peel segmenter" in err
