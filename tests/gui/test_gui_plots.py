"""Issue #17 item 1: losses per kind of stage, on one step axis through the stages in run order."""

from __future__ import annotations

import numpy as np


def drain(plots) -> int:
    """Redraw until nothing is left to draw (a new curve is built per tick); returns the ticks."""
    ticks = 0
    while plots._dirty:
        plots._redraw()
        ticks += 1
    return ticks


def test_stages_follow_each_other_on_the_axis_and_get_their_own_plot(qtbot):
    from app.plots import MetricsPlots

    plots = MetricsPlots()
    qtbot.addWidget(plots)
    for done in (10, 20):  # the prior's fit counts from 0
        plots.add_losses(done, {"bce": 0.5, "dice": 0.4}, "bootstrap")
    for step in (1, 50, 100):  # the GAN counts the run's steps from 1
        plots.add_losses(step, {"d": 1.0, "g": 2.0, "coverage": 0.3}, "gan")
    for step in (110, 120):  # the segmenter's fit starts again at the GAN's step
        plots.add_losses(step, {"bce": 0.3, "dice": 0.2}, "segmenter")
    plots.add_losses(101, {"d": 0.9, "g": 1.9}, "round-1-gan")

    x = {key: series.view()[0] for key, series in plots.losses.items()}
    prior, gan = x["GrabCut prior:bce"], x["d"]
    seg = x["segmenter:bce"]
    assert prior.max() < gan.min()  # no stage drawn over another
    assert gan[2] < seg.min() and seg.max() < gan[-1]  # round 1 comes after the segmenter
    assert np.isnan(plots.losses["d"].view()[1][3])  # a break between the two GAN stages
    assert plots.coverage.n == 3
    drain(plots)
    tabs = [plots.loss_tabs.tabText(i) for i in range(plots.loss_tabs.count())
            if plots.loss_tabs.isTabVisible(i)]
    assert tabs == ["GrabCut prior losses", "GAN losses", "segmenter losses"]
    assert plots.loss_tabs.currentWidget() is plots._pages["GAN"]  # the stage reporting now
    assert len(plots.loss_plots["GAN"].listDataItems()) == 2  # d and g, not 12 series
    plots.clear()
    assert not plots.loss_plots and not plots.loss_plots.get("GAN")
    assert not plots._plots["GAN"].listDataItems()
    assert plots.loss_tabs.currentWidget() is plots._placeholder


def test_legend_names_sit_beside_their_line_samples(qtbot):
    """Seen in a mid-run screenshot: the legend beside a loss plot was stretched to the plot's
    height, so "bce" stood 40 px above its blue sample, level with nothing."""
    from app.plots import MetricsPlots

    plots = MetricsPlots()
    qtbot.addWidget(plots)
    plots.resize(880, 300)
    plots.show()
    qtbot.waitExposed(plots)
    for step in (10, 20, 30):
        plots.add_losses(step, {"bce": 0.5, "dice": 0.4}, "bootstrap")
    drain(plots)
    qtbot.wait(50)
    legend = plots._legends["GrabCut prior"]
    assert len(legend.items) == 2
    for sample, label in legend.items:
        sample_y = sample.mapToScene(sample.boundingRect().center()).y()
        text = label.item  # the text inside the label cell
        label_y = text.mapToScene(text.boundingRect().center()).y()
        assert abs(sample_y - label_y) < 8, (label.text, sample_y, label_y)


def test_a_stage_s_first_losses_are_drawn_over_several_ticks(qtbot):
    """Revealing a stage's tab and building its six curves and legend entries in one tick was the
    worst gap of a GUI run (bench/gui_latency.py): the tab comes first, then a curve per tick."""
    from app.plots import MetricsPlots

    plots = MetricsPlots()
    qtbot.addWidget(plots)
    names = ("d", "g", "d_real", "d_fake", "l_bg", "l_mask")
    plots.add_losses(25, {name: 0.5 for name in names}, "gan")
    plots._redraw()
    assert plots.loss_tabs.currentWidget() is plots._pages["GAN"]
    assert not plots.loss_plots["GAN"].listDataItems()  # the tab alone in the first tick
    plots._redraw()
    assert len(plots.loss_plots["GAN"].listDataItems()) == 1
    assert drain(plots) == len(names) - 1
    assert len(plots.loss_plots["GAN"].listDataItems()) == len(names)
    plots.add_losses(50, {name: 0.4 for name in names}, "gan")
    assert drain(plots) == 1  # once built, one tick redraws them all
