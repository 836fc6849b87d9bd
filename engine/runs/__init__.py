"""A run on disk: the run folder's layout (``folder.RunFolder``), checkpoints, the metrics log and
preview grids. Below the methods and the trainer (both write runs), above the segmenter (a run
folder holds ``segmenter.pt``)."""
