"""fit_unet: trains, reports, stops on request; the saved segmenter serves photos of any size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from train_helpers import drain as run

from engine.control import RunControl
from engine.events import Losses, PhaseChanged, Progress
from engine.imageio import read_rgb
from engine.nets.unet import UNet, UNetConfig
from engine.segmenter.augment import AugmentConfig, augment_pairs
from engine.segmenter.fit import coarse_ok, fit_unet
from engine.segmenter.infer import predict_soft
from engine.segmenter.model import load_segmenter, save_segmenter


def disc_sampler(size: int = 32, seed: int = 0):
    """Bright discs on darker noise: an easy, learnable pair distribution."""
    gen = torch.Generator().manual_seed(seed)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        cy, cx = torch.randint(10, size - 10, (2, n, 1, 1), generator=gen)
        r = torch.randint(5, 9, (n, 1, 1), generator=gen)
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < r**2).float().unsqueeze(1)
        noise = torch.rand(n, 3, size, size, generator=gen) * 0.6 - 0.9
        return noise * (1 - mask) + (0.6 + 0.2 * noise) * mask, mask

    return sample


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(width=8, depth=2))


def test_trains_and_reports() -> None:
    events, net = run(
        fit_unet(
            disc_sampler(),
            small_unet(),
            torch.device("cpu"),
            None,
            40,
            8,
            RunControl(),
            "segmenter",
            100,
            lr=5e-3,
        )
    )
    assert isinstance(events[0], PhaseChanged) and events[0].phase == "segmenter"
    losses = [e for e in events if isinstance(e, Losses)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert losses and progress
    assert progress[-1].step == 140 and progress[-1].fraction == 1.0
    assert set(losses[-1].values) == {"bce", "dice"}
    assert not net.training
    # It learned the discs: better than the 0.5-everywhere start on fresh samples.
    images, masks = disc_sampler(seed=1)(16)
    with torch.no_grad():
        pred = torch.sigmoid(net(images)) >= 0.5
    iou = (pred & (masks > 0.5)).sum() / (pred | (masks > 0.5)).sum()
    assert iou > 0.5


def test_stops_between_steps_on_request() -> None:
    control = RunControl()
    calls = []
    inner = disc_sampler()

    def sample(n: int):
        calls.append(n)
        if len(calls) == 2:
            control.stop()
        return inner(n)

    events, net = run(
        fit_unet(sample, small_unet(), torch.device("cpu"), 600.0, 1000, 4, control, "seg", 0)
    )
    assert len(calls) == 2
    assert [e for e in events if isinstance(e, Progress)][-1].step == 2
    assert isinstance(net, UNet) and not net.training


def test_budget_mode_ends_on_time() -> None:
    events, _ = run(
        fit_unet(
            disc_sampler(), small_unet(), torch.device("cpu"), 0.5, None, 4, RunControl(), "seg", 0
        )
    )
    last = [e for e in events if isinstance(e, Progress)][-1]
    assert last.fraction == 1.0 and last.elapsed_s >= 0.5 and last.eta_s == 0.0


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    torch.manual_seed(0)
    _, masks = disc_sampler()(8)
    images = (masks * 2 - 1).repeat(1, 3, 1, 1)  # image is the mask itself
    cfg = AugmentConfig(brightness=0, contrast=0, saturation=0, hue_swap=0)
    img_a, mask_a = augment_pairs(images, masks, cfg)
    assert img_a.shape == images.shape and mask_a.shape == masks.shape
    assert torch.allclose((img_a[:, :1] + 1) / 2, mask_a, atol=1e-4)
    assert not torch.allclose(mask_a, masks)  # something did move


def test_saved_segmenter_serves_odd_sizes_and_grey_photos(tmp_path: Path) -> None:
    _, net = run(
        fit_unet(
            disc_sampler(), small_unet(), torch.device("cpu"), None, 2, 4, RunControl(), "seg", 0
        )
    )
    path = tmp_path / "segmenter.pt"
    save_segmenter(path, net, size=32, method="test", source="discs")
    model, info = load_segmenter(path)
    assert info.size == 32
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (333, 517, 3), dtype=np.uint8)
    grey_path = tmp_path / "grey.png"
    cv2.imwrite(str(grey_path), rng.integers(0, 256, (121, 90), dtype=np.uint8))
    grey = read_rgb(grey_path)
    soft = predict_soft(model, [colour, grey], info.size)
    assert soft[0].shape == (333, 517) and soft[1].shape == (121, 90)
    for s in soft:
        assert s.dtype == np.float32 and 0.0 <= s.min() and s.max() <= 1.0
    # Same weights before and after the round trip: same output.
    again = predict_soft(net, [colour], 32)[0]
    assert np.allclose(again, soft[0], atol=1e-5)


def test_a_coarse_share_trains_on_halved_batches_first_then_at_full_size() -> None:
    """The prior's coarse-to-fine schedule: the first share of the steps sees the batch at half
    its side, the rest at full size, and the net comes out serving the full size."""
    seen: list[tuple[int, int]] = []
    net = small_unet()
    net.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    _, net = run(fit_unet(disc_sampler(size=64), net, torch.device("cpu"), None, 6, 2,
                          RunControl(), "prior", 0, coarse_share=0.5))
    assert seen == [(32, 32)] * 3 + [(64, 64)] * 3
    assert not net.training


def test_no_coarse_phase_where_half_the_side_is_too_small_or_off_the_stride() -> None:
    seen: list[tuple[int, int]] = []
    net = small_unet()  # 32 px would halve to 16: too coarse to learn from (bench/RESULTS.md)
    net.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    run(fit_unet(disc_sampler(), net, torch.device("cpu"), None, 2, 2, RunControl(), "prior", 0,
                 coarse_share=0.5))
    assert seen == [(32, 32)] * 2
    assert coarse_ok((4, 3, 64, 64), 16) and coarse_ok((128, 128), 16)
    assert not coarse_ok((4, 3, 64, 48), 16) and not coarse_ok((32, 32), 16)
    assert not coarse_ok((96, 96), 32)  # 48 is not a multiple of 32
