"""The main window's panels: each is a plain widget that emits signals and has slots."""
