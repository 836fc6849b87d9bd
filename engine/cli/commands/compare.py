"""``peel compare FOLDER --gt MASKS``: train each method on the same budget, score all, write a report."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from engine.cli.errors import CliError
from engine.cli.interrupt import stop_on_first_interrupt
from engine.control import RunControl
from engine.methods.registry import method_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="train several methods on one folder and compare them (scored when --gt is given)",
        description="Train each method on FOLDER with the same budget (or reuse OUT/<method>/ runs "
        "that already have segmenter.pt), segment the photos (with --gt: those that have a "
        "ground-truth mask in MASKS, scored by IoU, mIoU, accuracy and maxF beside GrabCut) and "
        "write OUT/report.md with a table and OUT/report.png with the same photos segmented by "
        "each method. Without --gt nothing is scored: the figure is the comparison. The ground "
        "truth is only used for scoring. latentdir trains no GAN: it reuses the generator "
        "of OUT/perturbgan (or OUT/ilgan), training perturbgan first if neither exists.",
    )
    p.add_argument("folder", type=Path, metavar="FOLDER", help="folder of photos (never modified)")
    p.add_argument("--gt", type=Path, metavar="MASKS",
                   help="ground-truth masks (0/255, same names) to score against; optional")
    p.add_argument("--ignore", type=Path, metavar="DIR", help="masks of pixels to leave out (255 = ignore)")
    p.add_argument("--methods", default=",".join(method_names()),
                   help=f"comma-separated: {', '.join(method_names())} (default: all)")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per method (default 10)")
    p.add_argument("--out", type=Path, metavar="DIR", help="where runs and the report go "
                   "(default: ./<FOLDER name>-compare)")
    p.add_argument("--size", type=int, choices=[32, 64, 128], default=64)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.compare import CompareConfig, run_compare

    for label, folder in (("FOLDER", args.folder), ("--gt", args.gt), ("--ignore", args.ignore)):
        if folder is not None and not folder.is_dir():
            raise CliError(f"{label} is not a folder: {folder}")
    out = args.out or Path.cwd() / f"{args.folder.resolve().name}-compare"
    if out.resolve() == args.folder.resolve():
        raise CliError("--out must differ from FOLDER (photos are never overwritten)")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    control = RunControl()
    previous = stop_on_first_interrupt(control, lambda text: print(text, flush=True))
    try:
        config = CompareConfig(folder=str(args.folder), gt=str(args.gt) if args.gt else None, out=str(out), methods=methods,
                               minutes=args.minutes, ignore=str(args.ignore) if args.ignore else None,
                               size=args.size, device=args.device, seed=args.seed)
        report = run_compare(config, sink=_printer(), control=control)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:  # a second Ctrl-C: leave now; finished runs stay reusable
        print("interrupted; the same command continues the comparison", flush=True)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if report is None:  # stopped: each method's run keeps a checkpoint, no report yet
        print("stopped; the same command continues the comparison", flush=True)
        return 130
    print(f"report: {out / 'report.md'}")
    for row in report["rows"]:
        iou = row["scores"].get("iou")
        score = f"IoU {iou:.3f}" if iou is not None else "no score"
        print(f"  {row['method']:<11} {score}  ({row['status']}{'; ' + row['note'] if row['note'] else ''})")
    return 0


def _printer():  # type: ignore[no-untyped-def]
    from engine.describe import describe
    from engine.events import Failed, Finished, PhaseChanged, Progress, WarningEvent

    last: dict[str, float] = {}

    def sink(method: str, ev: object) -> None:
        if isinstance(ev, Progress):
            if ev.elapsed_s - last.get(method, -1e9) < 30:
                return
            last[method] = ev.elapsed_s
        elif not isinstance(ev, (PhaseChanged, WarningEvent, Failed, Finished)):
            return
        print(f"[{method}] {describe(ev)}", file=sys.stderr if isinstance(ev, Failed) else sys.stdout,
              flush=True)

    return sink
