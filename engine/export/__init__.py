"""Getting a trained segmenter out of Peel: one ONNX file, and masks for whole folders.

``onnx`` writes the self-contained model file, ``sessions`` runs it with onnxruntime (CUDA or CPU,
saying which really runs), ``masks`` is the batch pipeline behind ``peel segment`` and the GUI.
"""
