"""Methods, losses and perturbations on random tensors (no data folder, no trainer)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils import parametrize

from engine.augment import affine, diff_augment, sample_affine, sample_diff_augment, shift_images
from engine.config import NetConfig, RunConfig
from engine.losses import background_prior, binarization, min_size_hinge
from engine.methods import build_method
from engine.methods.registry import layered_gan_names


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on the shared 2-core test machine two spin-waiting threads run far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small(method: str, size: int = 32) -> RunConfig:
    return RunConfig(folder="f", out="o", method=method, size=size, batch=4, steps=1,
                     net=NetConfig(g_width=8, d_width=8, z_dim=16))


@pytest.mark.parametrize("method", sorted(layered_gan_names()))
def test_a_step_trains_both_generators_with_finite_losses(method):
    torch.manual_seed(0)
    m = build_method(small(method), torch.device("cpu"))
    before_bg = [p.clone() for p in m.bg.parameters()]
    before_fg = [p.clone() for p in m.fg.parameters()]
    losses = m.step(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert all(torch.isfinite(v) for v in losses.values())
    assert {"d_total", "g_total", "binarize", "coverage"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(before_bg, m.bg.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_fg, m.fg.parameters(), strict=True))
    s = m.sample(m.sample_codes(3))
    assert s.background.shape == (3, 3, 32, 32) and s.mask.shape == (3, 1, 32, 32)
    assert float(s.mask.min()) >= 0 and float(s.mask.max()) <= 1
    assert torch.allclose(s.composite, (1 - s.mask) * s.background + s.mask * s.foreground)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_generators_and_discriminator_fit_every_size(size):
    m = build_method(small("ilgan", size), torch.device("cpu"))
    s = m.sample(m.sample_codes(2))
    assert s.composite.shape == (2, 3, size, size)
    score, feats = m.disc(s.composite)
    assert score.shape == (2,) and feats.shape[1] == m.disc.feature_dim


def test_state_dict_round_trip_gives_the_same_samples():
    a = build_method(small("ilgan"), torch.device("cpu"))
    a.step(torch.rand(4, 3, 32, 32) * 2 - 1)
    b = build_method(small("ilgan"), torch.device("cpu"))
    b.load_state_dict(a.state_dict())
    codes = a.sample_codes(2)
    assert torch.equal(a.sample(codes).composite, b.sample(codes).composite)
    assert b.steps_done == 1


def test_shift_is_exact_with_zero_fill():
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    out = shift_images(x, torch.tensor([1]), torch.tensor([-1]))
    expected = torch.tensor([[0, 5, 6, 7], [0, 9, 10, 11], [0, 13, 14, 15], [0, 0, 0, 0.0]])
    assert torch.equal(out[0, 0], expected)


def test_affine_with_no_perturbation_is_identity_and_augment_keeps_shape():
    x = torch.rand(2, 4, 16, 16)
    assert torch.allclose(affine(x, sample_affine(2, 0.0, 0.0, 0.0, x.device)), x, atol=1e-5)
    y = diff_augment(x[:, :3] * 2 - 1, sample_diff_augment(2, 16, 16, x.device, x.dtype))
    assert y.shape == (2, 3, 16, 16) and not torch.equal(y, x[:, :3] * 2 - 1)


def test_binarization_has_no_flat_grey_resting_point():
    """The calibration trap: the size hinge and binarization must not cancel on a grey mask."""
    grey = torch.full((1, 1, 8, 8), 0.2, requires_grad=True)
    loss = 2 * min_size_hinge(grey, 0.2) + 2 * binarization(grey)
    loss.backward()
    assert float(grey.grad.abs().sum()) > 0  # a grey mask at eta is pushed away
    assert float(binarization(torch.zeros(1, 1, 4, 4))) == 0 == float(binarization(torch.ones(1, 1, 4, 4)))


def test_background_prior_pushes_the_segmenter_score_down():
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    background_prior(logits).backward()
    assert float(logits.grad.sum()) > 0  # gradient descent lowers the logits: S(B) -> 0
    assert float(background_prior(torch.full((1, 1, 2, 2), -20.0))) < 1e-6


def test_config_round_trips_through_json_and_rejects_typos():
    cfg = small("perturbgan")
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown"):
        RunConfig.from_dict({**cfg.to_dict(), "sizee": 3})
    with pytest.raises(ValueError, match="method"):
        RunConfig(folder="f", out="o", method="nope", steps=1)


def test_border_mass_penalises_a_mask_that_hugs_the_frame():
    from engine.losses import border_mass

    centred = torch.zeros(1, 1, 32, 32)
    centred[..., 8:24, 8:24] = 1
    assert float(border_mass(centred)) == 0.0
    assert float(border_mass(1 - centred)) == 1.0


def test_perturbgan_size_term_pushes_a_full_mask_down():
    """The all-foreground collapse (every demo seed by step 150) costs PerturbGAN something now."""
    torch.manual_seed(0)
    m = build_method(small("perturbgan"), torch.device("cpu"))
    img = torch.rand(4, 3, 32, 32) * 2 - 1

    def size_term(mask_value: float) -> float:
        mask = torch.full((4, 1, 32, 32), mask_value, requires_grad=True)
        fake = {"b": img, "f": img, "m": mask, "m_p": mask, "fake": img}
        return float(m.g_loss(fake)["size"].detach())

    assert size_term(1.0) == pytest.approx(0.4, abs=1e-6)  # coverage 1 vs the 0.6 cap
    assert size_term(0.3) == 0.0  # between eta (0.2) and the cap: free
    assert size_term(0.1) == pytest.approx(0.1, abs=1e-6)  # below eta


def test_perturbgan_size_floor_from_the_photos_replaces_eta():
    """With a floor read from the photos, a mask smaller than eta but above the floor is free."""
    torch.manual_seed(0)
    m = build_method(small("perturbgan"), torch.device("cpu"))
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    mask = torch.full((4, 1, 32, 32), 0.1)
    fake = {"b": img, "f": img, "m": mask, "m_p": mask, "fake": img}
    assert float(m.g_loss(fake)["size"]) == pytest.approx(0.1, abs=1e-6)  # eta 0.2 binds
    m.set_size_floor(0.08)
    assert float(m.g_loss(fake)["size"]) == 0.0
    m.set_size_floor(None)
    assert float(m.g_loss(fake)["size"]) == pytest.approx(0.1, abs=1e-6)


def test_ilgan_reads_the_photos_size_floor_and_a_gradient_penalty_critic():
    """ilgan's hinge/spectral-norm critic and fixed 0.1 floor ended as a centred box on the demo
    in every run; it now shares PerturbGAN's WGAN-GP critic and per-sample floor."""
    torch.manual_seed(0)
    m = build_method(small("ilgan"), torch.device("cpu"))
    assert m.has_size_floor
    critic = [*m.disc.modules(), *m.d_extra["head_x"].modules()]
    assert not any(parametrize.is_parametrized(mod) for mod in critic)  # no spectral norm
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        fake = m.make_fake(4)
        m.set_size_floor(None)
        loose = float(m.g_loss(fake)["size"])
        m.set_size_floor(0.99)
        strict = float(m.g_loss(fake)["size"])
    assert strict > loose + 0.1
    d_terms = m.d_loss(real, m.make_fake(4))
    assert {"gp", "mi_x_d"} <= set(d_terms)
