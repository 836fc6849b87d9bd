"""The segmenter stage trusts generated pairs only when the label-free judge agrees with them."""

from __future__ import annotations

import json

import pytest
from train_helpers import run_all, tiny_config

from engine.config import PipelineConfig
from engine.control import RunControl
from engine.events import Failed, Finished, WarningEvent
from engine.methods import build_method
from engine.segmenter.model import load_segmenter
from engine.train import pair_sources, segmenter_stages
from engine.train.context import StageContext
from engine.train.segmenter_stages import choose_pair_source

PIPE = PipelineConfig(bootstrap=False, segmenter=True, rounds=1, segmenter_steps=2,
                      segmenter_batch=4, round_gan_fraction=0.5, min_agreement=0.5)


def _sources(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == "segmenter-source"]


def _fake_bank(kept: int, size: int) -> pair_sources.Bank:
    import torch

    gen = torch.Generator().manual_seed(0)
    masks = torch.zeros(kept, 1, size, size)
    masks[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    return pair_sources.Bank(torch.rand(kept, 3, size, size, generator=gen) * 2 - 1, masks,
                             4 * kept)


@pytest.mark.parametrize(
    "agreement, same, kept, trusted",
    [(0.1, 0.4, 3, False), (0.4, 0.4, 80, True), (0.9, 0.4, 80, True), (0.9, 0.95, 80, False)],
)
def test_round_uses_generated_pairs_only_when_enough_agree_and_masks_vary(
    tiny_demo_folder, tmp_path, monkeypatch, agreement, same, kept, trusted
):
    """The mean agreement no longer decides (0.4 with 80 agreeing pairs is used, #18): the
    number of pairs that agree one by one does, and a box generator is still refused."""
    monkeypatch.setattr(segmenter_stages, "measure_agreement", lambda ctx, judge: agreement)
    monkeypatch.setattr(segmenter_stages, "measure_sameness", lambda ctx: same)
    banks = []

    def bank(ctx, judge, stage):
        banks.append(stage.name)
        return _fake_bank(kept, ctx.config.size)

    monkeypatch.setattr(segmenter_stages, "measure_bank", bank)
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE)
    events = run_all(cfg)
    assert not [e.error for e in events if isinstance(e, Failed)]
    assert isinstance(events[-1], Finished)
    sources = _sources(tmp_path / "run")
    # The first fit has no judge yet (no prior); the round's fit is judged by the first segmenter.
    assert [s["stage"] for s in sources] == ["segmenter", "round-1-segmenter"]
    assert sources[0]["agreement"] is None and sources[0]["gan_pairs"] is True
    assert sources[1]["agreement"] == agreement and sources[1]["gan_pairs"] is trusted
    # A box generator's pairs are not even drawn; otherwise the round judged its candidates.
    assert banks == ([] if same > PIPE.max_sameness else ["round-1-segmenter"])
    assert sources[1]["kept_pairs"] == (None if same > PIPE.max_sameness else kept)
    layer_warnings = [e for e in events if isinstance(e, WarningEvent) and e.kind == "layers"]
    assert bool(layer_warnings) is (not trusted)
    model, _ = load_segmenter(tmp_path / "run" / "segmenter.pt")
    assert model.config.width == 16


def test_agreement_is_the_iou_between_judge_and_generator_masks(tiny_demo_folder, tmp_path):
    """A judge that copies the generator's own mask agrees fully; one that sees nothing does not."""
    import torch

    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=1, pipeline=PIPE)
    run = StageContext(cfg, RunControl())
    run.method = build_method(cfg, run.device)

    captured = {}

    def copying_judge(composite):
        codes = captured["codes"]
        mask = run.method.sample(codes).mask
        return torch.where(mask > 0.5, 10.0, -10.0)

    original = run.method.sample

    def spy(codes, ema=True):
        captured["codes"] = codes
        return original(codes, ema)

    run.method.sample = spy  # type: ignore[method-assign]
    assert segmenter_stages.measure_agreement(run, copying_judge) == pytest.approx(1.0)
    blind = segmenter_stages.measure_agreement(run, lambda x: torch.full_like(x[:, :1], -10.0))
    masks = original(captured["codes"]).mask > 0.5
    empty_share = float((masks.flatten(1).sum(1) == 0).float().mean())
    assert blind == pytest.approx(empty_share)


def test_sameness_tells_one_repeated_box_from_varied_objects():
    import torch

    box = torch.zeros(16, 1, 32, 32)
    box[:, :, 8:24, 8:24] = 1.0
    assert pair_sources.sameness(box) == pytest.approx(1.0)
    varied = torch.zeros(16, 1, 32, 32)
    for i in range(16):  # small discs at different places
        y, x = 4 + (i % 4) * 7, 4 + (i // 4) * 7
        varied[i, :, y : y + 6, x : x + 6] = 1.0
    # No pixel is object in most masks: the majority mask is empty, each IoU with it is 0.
    assert pair_sources.sameness(varied) == pytest.approx(0.0)


def test_pair_source_decision_is_a_function_of_the_measurements():
    """No teacher: the generator's pairs; else only when enough pairs agree and masks vary."""
    enough = segmenter_stages.MIN_BANK
    assert choose_pair_source(False, None, 1.0, None, PIPE).generated
    trusted = choose_pair_source(True, 0.45, 0.4, enough, PIPE)
    assert trusted.generated and trusted.warning is None
    assert f"{enough} generated pairs" in trusted.detail and "0.45" in trusted.detail
    disagree = choose_pair_source(True, 0.1, 0.4, enough - 1, PIPE)
    assert not disagree.generated and "disagree with the label-free prior" in disagree.warning
    assert not choose_pair_source(True, 0.1, 0.4, None, PIPE).generated
    box = choose_pair_source(True, 0.9, 0.95, 10 * enough, PIPE)
    assert not box.generated and "one shape for every latent code" in box.warning


def test_a_fit_from_the_previous_segmenter_fine_tunes_at_a_lower_rate(
    tiny_demo_folder, tmp_path, monkeypatch
):
    """A fresh Adam at the from-scratch rate undid the prior's weights in short stages (#18): a
    fit that starts from the previous segmenter uses FINETUNE_LR, one from scratch SCRATCH_LR."""
    from engine.segmenter import fit

    real_fit, rates = fit.fit_unet, []

    def spy(*args, **kwargs):
        rates.append(kwargs.get("lr"))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(fit, "fit_unet", spy)
    cfg = tiny_config(tiny_demo_folder, tmp_path / "run", steps=4, pipeline=PIPE)
    events = run_all(cfg)
    assert isinstance(events[-1], Finished)
    # No bootstrap here: the first fit starts from scratch, the round's from the first fit.
    assert rates == [segmenter_stages.SCRATCH_LR, segmenter_stages.FINETUNE_LR]
    assert segmenter_stages.FINETUNE_LR < segmenter_stages.SCRATCH_LR
