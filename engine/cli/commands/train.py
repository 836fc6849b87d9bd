"""``peel train FOLDER --out RUN_DIR``: train a layered GAN and its segmenter, with a progress line."""

from __future__ import annotations

import argparse
import io
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from engine.cli.errors import CliError
from engine.cli.interrupt import stop_on_first_interrupt
from engine.control import RunControl
from engine.methods.registry import DEFAULT_METHOD, SPECS
from engine.text import one_line

if TYPE_CHECKING:
    from engine.events import Failed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a layered GAN + segmenter on a folder of photos",
        description="Train on the photos in FOLDER and write the run (config, checkpoints, "
        "previews, metrics, segmenter.pt) to RUN_DIR. Give a time budget (--minutes) or a number "
        "of GAN steps (--steps). --resume continues a stopped or killed run at its saved step.",
    )
    p.add_argument("folder", type=Path, metavar="FOLDER", help="folder of photos (never modified)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    p.add_argument(
        "--method", choices=list(SPECS), default=DEFAULT_METHOD,
        help=", ".join(f"{name}: {spec.summary.split(':')[0]}" for name, spec in SPECS.items())
        + f" (default {DEFAULT_METHOD}; the app's tooltips say more)",
    )
    p.add_argument(
        "--generator", type=Path, metavar="RUN",
        help="latentdir only: a finished perturbgan or ilgan run whose generator is reused "
        "(without it, perturbgan is trained first in RUN_DIR/generator)",
    )
    p.add_argument(
        "--size", type=int, choices=[32, 64, 128], default=64,
        help="training resolution in pixels (default: %(default)s; 32 gives ~4x more steps per "
        "minute on a CPU, 128 needs a GPU to be practical)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="time budget for the whole pipeline")
    budget.add_argument("--steps", type=int, help="GAN steps (reproducible; default budget 20 min)")
    p.add_argument(
        "--batch", type=int, default=32,
        help="photos per GAN step, over all processes under torchrun (default: %(default)s)",
    )
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto",
        help="auto: CUDA when torch finds a GPU, else the CPU (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0,
        help="seed of every random draw: the same seed and --steps give the same weights "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--threads", type=positive_int, metavar="N",
        help="CPU threads for torch (default with --minutes: 1 or every usable core, whichever "
        "a short timing at start-up finds faster, printed with the device; with --steps every "
        "core, so that the weights do not depend on a timing)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    p.add_argument("--no-bootstrap", action="store_true",
                   help="skip the GrabCut-based prior (redo: the mask net's warm start from it)")
    p.add_argument(
        "--no-gan", action="store_true",
        help="leave the GAN out: the label-free prior, then self-training rounds on your photos "
        "(what the plan also does when --minutes is too short for the GAN to pay off)",
    )
    p.add_argument(
        "--segmenter", choices=["unet", "encoder"], default="unet",
        help="perturbgan only. unet: the pipeline's UNet (default); encoder: also train "
        "PerturbGAN's encoder that inverts the generator, which becomes segmenter.pt "
        "(the UNet is kept as segmenter-unet.pt)",
    )
    p.set_defaults(func=run)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse prints the one-line error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from engine.config import LatentDirSettings, PerturbGanConfig, PipelineConfig, RunConfig
    from engine.parallel import distributed

    if not args.folder.is_dir():
        raise CliError(f"not a folder: {args.folder}")
    if distributed.launched() and (not SPECS[args.method].torchrun or args.segmenter != "unet"):
        under = "|".join(name for name, spec in SPECS.items() if spec.torchrun)
        raise CliError(f"under torchrun only --method {under} with --segmenter unet run")
    if args.generator is not None and args.method != "latentdir":
        raise CliError("--generator needs --method latentdir")
    if args.generator is not None and not (args.generator / "checkpoints").is_dir():
        raise CliError(f"--generator: {args.generator} is not a trained perturbgan or ilgan run")
    if args.segmenter != "unet" and args.method != "perturbgan":
        raise CliError("--segmenter encoder needs --method perturbgan")
    minutes = args.minutes if args.minutes is not None or args.steps is not None else 20.0
    try:
        config = RunConfig(
            folder=str(args.folder), out=str(args.out), method=args.method, size=args.size,
            batch=args.batch, minutes=minutes, steps=args.steps, device=args.device,
            seed=args.seed, threads=args.threads,
            perturbgan=PerturbGanConfig(segmenter=args.segmenter),
            latentdir=LatentDirSettings(
                generator=str(args.generator) if args.generator is not None else None),
        )
        if args.no_bootstrap or args.no_gan:
            config = replace(config, pipeline=PipelineConfig(
                bootstrap=not args.no_bootstrap, gan=not args.no_gan))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    return consume(config, resume=args.resume, out=sys.stdout, debug=getattr(args, "debug", False))


def consume(
    config: object, resume: bool, out: TextIO, *, err: TextIO | None = None, debug: bool = False
) -> int:
    """Print the event stream: one rewritten progress line on a terminal, plain lines otherwise.

    A failure is one line ``peel train: error: ...`` on ``err`` (stderr): exit 2 when the folder,
    run folder or arguments are unusable, 1 when the run failed; a bug says so, and its traceback
    (logged by the trainer) is above it. ``debug`` prints every failure's traceback.
    """
    from engine.describe import console_line
    from engine.events import CheckpointSaved, Failed, Progress
    from engine.parallel import distributed
    from engine.train.runner import train

    rank = distributed.env_rank()
    if rank > 0:  # under torchrun rank 0 reports; the other ranks only speak to fail
        out = io.StringIO()
    tty = out.isatty()
    control = RunControl()
    open_line = False

    def say(text: str) -> None:
        nonlocal open_line
        if open_line:
            out.write("\n")
            open_line = False
        out.write(text + "\n")
        out.flush()

    events = train(config, control, resume=resume)  # type: ignore[arg-type]
    previous = stop_on_first_interrupt(control, say)
    clean = False  # set when the events ran out normally: only then do the ranks wait for each other
    try:
        for ev in events:
            if isinstance(ev, Progress):
                line = progress_line(ev)
                if tty:
                    out.write("\r" + line.ljust(79))
                    out.flush()
                    open_line = True
                else:
                    say(line)
            elif isinstance(ev, CheckpointSaved) and tty:
                continue  # the progress line says enough on a terminal
            elif isinstance(ev, Failed):
                if open_line:  # end the progress line before the error
                    out.write("\n")
                    out.flush()
                    open_line = False
                report_failure(ev, err or sys.stderr, rank=rank, debug=debug)
                return 2 if ev.cause == "input" else 1
            elif line := console_line(ev):  # losses and previews are drawn, not printed
                say(line)
        clean = True
    except KeyboardInterrupt:  # a second Ctrl-C: leave now, the last checkpoint stays usable
        say("interrupted; resume from the last checkpoint with --resume")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        distributed.shutdown(clean=clean)
    return 130 if control.stop_requested else 0


def report_failure(ev: Failed, err: TextIO, *, rank: int = 0, debug: bool = False) -> None:
    """One line for an expected failure; an internal one asks to be reported."""
    prefix = "peel train" if rank == 0 else f"peel train (rank {rank})"
    if debug and ev.cause != "internal" and ev.traceback:  # an internal one was logged already
        err.write(ev.traceback)
    if ev.cause == "internal":
        err.write(f"{prefix}: internal error, please report: {one_line(ev.error)}\n")
    else:
        err.write(f"{prefix}: error: {one_line(ev.error)}\n")
    err.flush()


def progress_line(ev: object) -> str:
    from engine.describe import describe
    from engine.events import Progress

    assert isinstance(ev, Progress)
    width = 20
    frac = ev.fraction if ev.fraction is not None else 0.0
    bar = "#" * int(round(frac * width))
    return f"[{bar:<{width}}] {describe(ev)}"
