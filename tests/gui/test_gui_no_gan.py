"""The training panel's "No GAN" checkbox (issue #18): it reaches the run's config, is disabled
while a run goes, and shows a saved run's setting."""

from __future__ import annotations

from dataclasses import replace

from app.engine_calls import make_config


def test_no_gan_checkbox_reaches_the_config_and_follows_a_saved_run(make_window):
    w = make_window()
    assert w.training.options()["gan"] is True
    w.training.no_gan.setChecked(True)
    config = make_config("photos", "run", w.training.options())
    assert config.pipeline.gan is False and config.pipeline.bootstrap is True
    w.training.set_running(True)
    assert not w.training.no_gan.isEnabled()
    w.training.set_running(False)
    w.training.apply_config(replace(config, pipeline=replace(config.pipeline, gan=True)))
    assert not w.training.no_gan.isChecked()
