"""The trainer: ``train(config, control)`` yields events; see runner.py for the pipeline."""
