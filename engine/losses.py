"""Loss terms shared by the methods. Masks are (N, 1, H, W) in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def wgan_d(real_scores: torch.Tensor, fake_scores: torch.Tensor, drift: float) -> torch.Tensor:
    """Critic loss with PerturbGAN's drift term, which keeps real scores from wandering off."""
    return fake_scores.mean() - real_scores.mean() + drift * (real_scores**2).mean()


def sample_interpolation(n: int, device: torch.device, dtype: torch.dtype,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's interpolation weights, (n, 1, 1, 1) uniform in [0, 1) (drawn apart from the
    penalty, so that the caller decides how: under torchrun, for the whole global batch)."""
    return torch.rand(n, 1, 1, 1, device=device, dtype=dtype, generator=generator)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
    eps: torch.Tensor,
) -> torch.Tensor:
    """WGAN-GP: (||grad critic(x_hat)|| - 1)^2 on the interpolates ``eps`` of real and fake."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def binarization(mask: torch.Tensor) -> torch.Tensor:
    """mean m(1 - m): zero only at 0 and 1.

    Not min(m, 1 - m): at equal weight with the size hinge its gradient cancels the hinge's and a
    flat grey mask at eta costs nothing (calibration). m(1 - m) has a gradient that grows towards
    the middle, so a grey mask is never a resting point.
    """
    return (mask * (1 - mask)).mean()


def coverage(mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean mask value, shape (N,)."""
    return mask.flatten(1).mean(dim=1)


def min_size_hinge(mask: torch.Tensor, eta: float) -> torch.Tensor:
    return F.relu(eta - coverage(mask)).mean()


def max_size_hinge(mask: torch.Tensor, cap: float) -> torch.Tensor:
    return F.relu(coverage(mask) - cap).mean()


def border_mass(mask: torch.Tensor, ring_fraction: float = 1 / 16) -> torch.Tensor:
    """Mean mask value on the outer ring of the image.

    Against the wrong layer assignment (the background layer draws the object and the mask takes
    the surroundings, so the mask hugs the frame): photos of "one kind of thing" rarely have the
    object along the whole border, so a small cost on mask mass there tips the choice.
    """
    h, w = mask.shape[-2:]
    r = max(1, int(round(min(h, w) * ring_fraction)))
    # A weighted mean, not ``mask[..., ring]``: boolean indexing sizes its output on the host,
    # which waits for the GPU at every step.
    ring = torch.ones(h, w, dtype=torch.float32, device=mask.device)
    ring[r : h - r, r : w - r] = 0
    count = (h * w - max(0, h - 2 * r) * max(0, w - 2 * r)) * (mask.numel() // (h * w))
    return (mask.float() * ring).sum() / count


def code_regression(pred: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """InfoGAN bound for a continuous code with a fixed-variance Gaussian posterior (= MSE / 2)."""
    return 0.5 * ((pred.float() - code.float()) ** 2).sum(dim=1).mean()


def background_prior(segmenter_logits: torch.Tensor) -> torch.Tensor:
    """L_bg = -log(1 - S(B)) = softplus(logit): minimising it pushes S(B) -> 0.

    A frozen segmenter S that sees an object in the background layer makes the generator move the
    object into the foreground layer (the layer-assignment problem of real photos).
    """
    return F.softplus(segmenter_logits.float()).mean()


def mask_outside_prior(mask: torch.Tensor, segmenter_logits: torch.Tensor) -> torch.Tensor:
    """Mean mask mass where the frozen segmenter S sees background in the composite.

    L_bg only forbids the object in B; nothing stops F and m from also taking background (a
    centred box whose inside F paints to match B, seen on horses and on the demo folder). This
    one-sided term trims such a mask to what S calls object, without pulling the mask towards
    S's own (blurrier) shape where S is unsure. S's verdict is a fixed target (no gradient).
    """
    return (mask.float() * torch.sigmoid(-segmenter_logits.detach().float())).mean()
