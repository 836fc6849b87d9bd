"""Run configuration: frozen dataclasses that round-trip through ``config.json``.

One ``RunConfig`` describes a whole run (data, method, budget, pipeline). It is written before the
first step and read back on ``--resume``, so every field is plain data (numbers, strings, bools,
nested dataclasses) and ``from_dict(to_dict(c)) == c``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

SIZES = (32, 64, 128)


@dataclass(frozen=True)
class NetConfig:
    """Widths are channels at full resolution; they double per halving, capped at 8x.

    Width 16 (G) / 32 (D) matches the calibration reference and keeps 64 px at >= 1.5 it/s on
    2 CPU cores.
    """

    g_width: int = 16
    d_width: int = 32
    z_dim: int = 64
    upsample: str = "resize"  # "transposed" only for the speed comparison with the reference


@dataclass(frozen=True)
class IlganConfig:
    """Improved layered GAN (Yang et al. 2022) as adapted here.

    The private code is a small continuous Gaussian (regressed by the MI heads): a 10-way
    categorical code stayed at chance in calibration and the run collapsed to "all foreground".
    ``mi_weight`` ramps in linearly over ``mi_ramp_steps`` so the heads start from a mask that
    already exists. ``max_coverage`` is a mild hinge against the all-foreground collapse;
    ``min_coverage`` a mild one against the empty mask until the MI term has taken hold; a GAN
    stage with a segmenter replaces it with the size floor read from the photos, as PerturbGAN's.
    The critic is WGAN-GP (``drift``, ``gp_weight``), not the paper's hinge loss with spectral
    norm, and ``mi_weight`` is the paper's best (1): engine/methods/ilgan.py says why.
    """

    c_dim: int = 4
    mi_weight: float = 1.0
    mi_ramp_steps: int = 1000
    binarize_weight: float = 2.0
    max_coverage: float = 0.6
    min_coverage: float = 0.1
    coverage_weight: float = 2.0
    border_weight: float = 1.0  # mask mass on the image border (wrong-layer guard)
    max_shift: float = 0.125  # fraction of the side
    max_rotate_deg: float = 10.0
    max_scale: float = 0.1  # scale in [1 - s, 1 + s]
    gp_weight: float = 10.0
    drift: float = 0.001
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.99


PERTURBGAN_SEGMENTERS = ("unet", "encoder")


@dataclass(frozen=True)
class PerturbEncoderConfig:
    """PerturbGAN's own real-image segmentation: an encoder that inverts the frozen generator.

    The paper's loss (autoencoding real photos: L1 + critic-feature perceptual term) is
    ``recon_weight`` / ``perceptual_weight``; regressing the code of generated samples
    (``z_weight``) and matching their masks (``mask_weight``) keep E(x) where the generator draws
    sensible layers. See engine/methods/perturbgan_encoder.py.
    """

    # Width 16, batch 16 (+ 16 photos): a width-32 encoder step cost 2.5 GAN steps on the CPU.
    width: int = 16
    fraction: float = 0.2  # share of --minutes for the encoder stage
    steps: int = 600  # encoder steps in --steps mode
    batch: int = 16
    lr: float = 1e-3
    z_weight: float = 1.0
    mask_weight: float = 1.0
    recon_weight: float = 1.0
    perceptual_weight: float = 1.0


@dataclass(frozen=True)
class PerturbGanConfig:
    """PerturbGAN (Bielski & Favaro 2019): WGAN-GP, integer shifts, mask-size hinge.

    Binarisation is ``m(1 - m)``: with ``min(m, 1 - m)`` at equal weight to the size hinge a flat
    grey mask at ``eta`` costs nothing (calibration). ``max_coverage`` is not in the paper, which
    names "all as foreground" as a failure without a remedy: on the demo folder every seed filled
    the mask by step 150 and the guard's restarts could not help (bench/RESULTS.md); the same mild
    upper hinge as ilgan's keeps the mask below it (1.0 switches it off).

    ``eta`` is the per-sample size floor when no segmenter is at hand. A GAN stage with one reads
    the floor from the photos instead (a low quantile of the object sizes the segmenter finds,
    never above ``eta``): engine/train/size_floor.py says why.
    """

    eta: float = 0.2
    max_coverage: float = 0.6
    size_weight: float = 2.0
    binarize_weight: float = 2.0
    max_shift: float = 0.125
    gp_weight: float = 10.0
    drift: float = 0.001
    contrast_low: float = 0.7
    contrast_high: float = 1.3
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.99
    # "encoder": after the pipeline, train PerturbGAN's encoder; it becomes segmenter.pt (the
    # UNet, if one was fitted, is kept as segmenter-unet.pt).
    segmenter: str = "unet"
    encoder: PerturbEncoderConfig = field(default_factory=PerturbEncoderConfig)

    def __post_init__(self) -> None:
        if self.segmenter not in PERTURBGAN_SEGMENTERS:
            raise ValueError(
                f"unknown perturbgan segmenter {self.segmenter!r} "
                f"(one of {', '.join(PERTURBGAN_SEGMENTERS)})"
            )


@dataclass(frozen=True)
class RedoSettings:
    """ReDO's own settings (engine/methods/redo.py says what each does and why these values)."""

    z_dim: int = 32
    mask_width: int = 16
    gen_width: int = 16
    critic_width: int = 16
    lambda_z: float = 5.0  # paper: λz = 5 / (n · |z|); this is the numerator
    lr: float = 1e-4
    lr_mask: float = 1e-5
    mask_weight_decay: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    init_gain: float = 0.8
    restart_every: int = 100
    restart_until: int = 1500
    min_region: float = 0.1
    max_restarts: int = 5
    # The share of a --minutes budget (or, with --steps N, min(N, 400) fit steps) in which the mask
    # net first learns GrabCut's masks of the photos, as Peel's prior does; 0: the paper's cold
    # start (a blotch over half the photo after CPU hours of these steps: bench/RESULTS.md).
    warm_start: float = 0.25
    # Weight of a BCE term that keeps the mask net's masks near the warm start's (a frozen copy of
    # the mask net as the warm start left it); 0: the paper's game alone. On the flowers the game
    # alone took the warm start's 0.921 to 0.856 in 30 CPU-minutes (bench/RESULTS.md, session 8);
    # anchored at 100 it ended within 0.001 of its warm start in 10 minutes (at 10: -0.002).
    anchor: float = 100.0


@dataclass(frozen=True)
class LatentDirSettings:
    """The latent-direction method's settings (engine/methods/latentdir.py).

    ``generator``: a finished ilgan/perturbgan run folder whose generator is reused; None trains
    the default layered GAN first, inside this run folder (``RUN_DIR/generator``). In ``--steps``
    mode the run's ``steps`` are the UNet's fit steps and ``direction_steps`` each direction's.
    """

    generator: str | None = None
    direction_steps: int = 300  # per direction, steps mode (paper: 1000 on a GPU)
    batch: int = 16
    lam: float = 5.0
    epsilon_scale: float = 0.5
    lr: float = 0.05
    max_coverage: float = 0.5
    min_component_share: float = 0.2
    min_change: float = 0.05  # mean |gray_l − gray_d| below this: the shift did nothing
    segmenter_batch: int = 32


@dataclass(frozen=True)
class GuardConfig:
    """Collapse guard thresholds (see engine/train/collapse.py for what each catches).

    The guard looks at the generator's masks at every log step; shape checks start after
    ``grace_steps`` because every mask is grey and blobby at the start.
    """

    grace_steps: int = 600  # binariness and layer checks start after this
    min_coverage: float = 0.02
    max_coverage: float = 0.95
    min_binariness: float = 0.3
    max_border_excess: float = 0.35  # border coverage minus centre coverage
    max_restarts: int = 3


@dataclass(frozen=True)
class StageSplit:
    """Fractions of ``--minutes`` given to each pipeline stage (renormalised over active stages).

    Measured on the demo folder, 10 CPU-minutes (bench/RESULTS.md): 15/55/15/15 gave the UNet
    stages ~330 steps and the segmenter IoU 0.889; 25/35/25/15 gave them ~480 steps and 0.909,
    while the GAN's few hundred CPU steps were refused by the pair gate either way.
    """

    bootstrap: float = 0.25
    gan: float = 0.35
    segmenter: float = 0.25
    rounds: float = 0.15


@dataclass(frozen=True)
class PipelineConfig:
    """Which stages run after the GAN, and how much work each gets in ``--steps`` mode."""

    bootstrap: bool = True
    # False (``--no-gan``): the label-free prior, then self-training rounds on the photos only.
    gan: bool = True
    # Below this budget the plan runs the no-GAN pipeline and says so: on 2 CPU cores the GAN's
    # pairs were refused by the pair gate at 10 minutes and under (bench/RESULTS.md, issue #16:
    # 3 min with the GAN 0.536 on the horses, against GrabCut's 0.683), so its minutes only
    # took steps from the segmenter.
    min_gan_minutes: float = 10.0
    segmenter: bool = True
    rounds: int = 1
    bg_weight: float = 1.0  # L_bg = softplus(S(B) logits)
    mask_prior_weight: float = 0.0  # mask mass where S sees background in the composite
    # Unused since #9: --steps runs count the bootstrap in segmenter_steps (time budgets made
    # them irreproducible); kept so that older config.json files still load.
    bootstrap_s: float = 120.0
    segmenter_steps: int = 400  # segmenter (and bootstrap prior) fit steps in --steps mode
    segmenter_batch: int = 32
    round_gan_fraction: float = 0.25  # each round's GAN steps, as a fraction of --steps
    # Segmenter stages use a generated pair only when the prior's mask of its composite has at
    # least this IoU with the generator's mask (per pair, #18; it was the batch mean before).
    min_agreement: float = 0.6
    max_sameness: float = 0.8  # ... and only when its masks are not one shape for every code
    real_mix: float = 0.5  # share of prior-labelled real photos in a batch when pairs are trusted
    # Photo labels of segmenter stages: the teacher's masks snapped to edges by GrabCut (relabel.py)
    refine_labels: bool = True
    split: StageSplit = field(default_factory=StageSplit)

    def __post_init__(self) -> None:
        if not self.gan and not (self.bootstrap and self.segmenter):
            raise ValueError("without the GAN the pipeline needs the bootstrap prior and the "
                             "segmenter stages (they are all it has)")


def check_run_shape(size: int, batch: int, minutes: float | None, steps: int | None) -> None:
    """Validation every method's config shares: one budget, a usable size and batch."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size}")
    if batch < 2:
        raise ValueError("batch must be at least 2")
    if (minutes is None) == (steps is None):
        raise ValueError("give exactly one of minutes or steps")
    if steps is not None and steps < 1:
        raise ValueError("steps must be at least 1")
    # NaN passes ``<= 0`` and infinity is no deadline: both ran zero steps and wrote an untrained
    # segmenter.pt with exit 0.
    if minutes is not None and not (0 < minutes < math.inf):
        raise ValueError(f"minutes must be a positive number, not {minutes}")


@dataclass(frozen=True)
class RunConfig:
    folder: str
    out: str
    # perturbgan, not ilgan: on CPU budgets only its generator separated the layers, with the
    # same segmenter IoU (bench/RESULTS.md, "Method comparison on the demo, horses and flowers").
    method: str = "perturbgan"
    size: int = 64
    batch: int = 32
    minutes: float | None = None
    steps: int | None = None
    device: str = "auto"
    threads: int | None = None  # CPU threads for torch; None = every core
    seed: int = 0
    ema_decay: float = 0.999
    log_every: int = 25
    preview_every: int = 200
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    preview_count: int = 8
    net: NetConfig = field(default_factory=NetConfig)
    ilgan: IlganConfig = field(default_factory=IlganConfig)
    perturbgan: PerturbGanConfig = field(default_factory=PerturbGanConfig)
    redo: RedoSettings = field(default_factory=RedoSettings)
    latentdir: LatentDirSettings = field(default_factory=LatentDirSettings)
    guard: GuardConfig = field(default_factory=GuardConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def __post_init__(self) -> None:
        from engine.methods.registry import method_names  # the registry imports this module

        if self.method not in method_names():
            raise ValueError(
                f"unknown method {self.method!r} (one of {', '.join(method_names())})"
            )
        check_run_shape(self.size, self.batch, self.minutes, self.steps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):  # config.json is user-editable: a list must not crash
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        if data.get("method") == "redo" and "pipeline" not in data:
            # A ReDO run folder from before the registry saved a flat RedoConfig: its own
            # settings go to the ``redo`` section, the fields both share stay where they are.
            shared = {f.name for f in dataclasses.fields(cls)}
            own = {f.name for f in dataclasses.fields(RedoSettings)}
            redo = {k: v for k, v in data.items() if k in own}
            data = {k: v for k, v in data.items() if k in shared and k != "redo"}
            data["redo"] = redo
        return _build(cls, data)


# Fields of a resumed run that must match the saved run: anything else may change on resume.
RESUME_LOCKED = ("method", "size", "net")


def resume_mismatch(saved: RunConfig, new: RunConfig) -> list[str]:
    """Human-readable differences that make a checkpoint unusable for ``new``."""
    out = []
    for name in RESUME_LOCKED:
        a, b = getattr(saved, name), getattr(new, name)
        if a != b:
            out.append(f"{name}: run has {_short(a)}, asked for {_short(b)}")
    if saved.method == new.method:
        a, b = getattr(saved, saved.method), getattr(new, new.method)
        if saved.method == "ilgan" and a.c_dim != b.c_dim:
            out.append(f"ilgan.c_dim: run has {a.c_dim}, asked for {b.c_dim}")
        for name in REDO_SHAPE if saved.method == "redo" else ():
            x, y = getattr(a, name), getattr(b, name)
            if x != y:
                out.append(f"redo.{name}: run has {x}, asked for {y}")
    return out


# ReDO settings that shape its weights: a checkpoint only loads into nets of the same shape.
REDO_SHAPE = ("z_dim", "mask_width", "gen_width", "critic_width")


def _short(value: Any) -> str:
    return str(dataclasses.asdict(value)) if dataclasses.is_dataclass(value) else repr(value)


def _build(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild nested frozen dataclasses; unknown keys are an error (a typo must not pass)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = _build(kind, value)
        kwargs[name] = value
    return cls(**kwargs)
