"""The one list of Peel's methods: everything that offers or runs a method derives from it.

``peel train --method`` choices, the app's method menu and tooltips, ``peel compare``, the runner's
dispatch and config loading (``RunConfig`` refuses a name that is not here) all read ``SPECS``.
Adding a method is one module plus one entry below.

Starting a method is imported lazily (``start`` looks its entry point up by module path) so that
this module stays light: ``engine.config`` asks it for the names while the method modules, which
import ``engine.config``, are not loaded yet.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.control import RunControl
    from engine.events import Event


@dataclass(frozen=True)
class MethodSpec:
    """What the rest of Peel needs to know about one method.

    ``entry``: ``"module:function"`` taking ``(RunConfig, RunControl, resume)`` and yielding events.
    ``settings``: the ``RunConfig`` field holding the method's own settings (its config type).
    ``layered_gan``: ``"module:Class"`` for methods the pipeline drives as a ``LayeredGan``.
    ``torchrun``: whether it runs under ``torchrun`` (several processes, one run).
    ``needs``: what it reuses from another run, said to the user; None when it needs nothing.
    """

    name: str
    summary: str
    entry: str
    settings: str
    torchrun: bool = False
    layered_gan: str | None = None
    needs: str | None = None

    def start(
        self, config: RunConfig, control: RunControl, resume: bool = False
    ) -> Iterator[Event]:
        return _load(self.entry)(config, control, resume)

    def gan_class(self) -> type:
        if self.layered_gan is None:
            raise ValueError(f"{self.name} is not a layered GAN")
        return _load(self.layered_gan)  # type: ignore[no-any-return]


_LAYERED = "engine.train.runner:train_layered_gan"

SPECS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "ilgan",
            "Improved layered GAN: a private foreground code that must be recoverable from the "
            "mask, so an empty mask cannot win. On CPU budgets its masks stayed a centred box.",
            _LAYERED, "ilgan", torchrun=True,
            layered_gan="engine.methods.ilgan:IlGan",
        ),
        MethodSpec(
            "perturbgan",
            "PerturbGAN: the foreground is shifted at random; size hinges keep the mask from "
            "vanishing or filling the image. The only one whose layers separated on CPU "
            "(recommended).",
            _LAYERED, "perturbgan", torchrun=True,
            layered_gan="engine.methods.perturbgan:PerturbGan",
        ),
        MethodSpec(
            "redo",
            "ReDO: a mask net segments your photos directly and each region is redrawn from "
            "noise; the mask net, first fitted to GrabCut's masks of your photos, becomes the "
            "segmenter (no GAN rounds).",
            "engine.methods.redo:train_redo_run", "redo",
        ),
        MethodSpec(
            "latentdir",
            "Latent directions: trains no GAN of its own; searches two latent directions of a "
            "layered GAN's generator that light up the object, then refines that run's "
            "segmenter on the masks they give and on your photos (without a generator run it "
            "trains perturbgan first).",
            "engine.methods.latentdir:train_latentdir", "latentdir",
            needs="a finished perturbgan or ilgan run (--generator)",
        ),
    )
}

DEFAULT_METHOD = "perturbgan"


def method_names() -> tuple[str, ...]:
    """Every method's name, in the order menus list them."""
    return tuple(SPECS)


def get(name: str) -> MethodSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (one of {', '.join(SPECS)})") from None


def layered_gan_names() -> tuple[str, ...]:
    """The methods trained as a layered GAN (their generator can feed latentdir)."""
    return tuple(name for name, spec in SPECS.items() if spec.layered_gan is not None)


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
