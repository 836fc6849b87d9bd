"""What a Peel ONNX file says about itself, so a runtime needs nothing but the file.

The keys live in the model's ``metadata_props`` (visible in Netron and in
``InferenceSession.get_modelmeta().custom_metadata_map``); values are strings, as ONNX requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

INPUT_NAME = "image"
OUTPUT_NAME = "prob"
FORMAT = "peel-segmenter-1"

KEY_FORMAT = "peel.format"
KEY_NORMALISATION = "peel.normalisation"
KEY_SIZE = "peel.size"
KEY_STRIDE = "peel.stride"
KEY_METHOD = "peel.method"
KEY_SOURCE = "peel.source"
KEY_VERSION = "peel.version"
KEY_INPUT = "peel.input"
KEY_OUTPUT = "peel.output"
KEY_RESIZE = "peel.resize"

INPUT_DOC = (
    "image: float32 (N, 3, H, W) RGB in [-1, 1] (x = rgb / 127.5 - 1); N, H and W are dynamic, "
    "H and W must be multiples of peel.stride (pad with reflection, then crop the output)"
)
OUTPUT_DOC = "prob: float32 (N, 1, H, W) foreground probability in [0, 1] (sigmoid included)"
RESIZE_DOC = (
    "resize the photo so its short side is peel.size, reflect-pad bottom/right to a multiple of "
    "peel.stride, crop the padding off the output and resize it back to the photo"
)


class ModelMetadataError(Exception):
    """The ONNX file is not a Peel segmenter or its metadata is incomplete."""


@dataclass(frozen=True)
class ModelMetadata:
    size: int
    stride: int
    normalisation: str
    method: str
    source: str
    version: str

    def to_props(self) -> dict[str, str]:
        return {
            KEY_FORMAT: FORMAT,
            KEY_NORMALISATION: self.normalisation,
            KEY_SIZE: str(self.size),
            KEY_STRIDE: str(self.stride),
            KEY_METHOD: self.method,
            KEY_SOURCE: self.source,
            KEY_VERSION: self.version,
            KEY_INPUT: INPUT_DOC,
            KEY_OUTPUT: OUTPUT_DOC,
            KEY_RESIZE: RESIZE_DOC,
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "model") -> ModelMetadata:
        if props.get(KEY_FORMAT) != FORMAT:
            raise ModelMetadataError(
                f"{where}: not a Peel segmenter ONNX file (metadata {KEY_FORMAT!r} is "
                f"{props.get(KEY_FORMAT)!r}, expected {FORMAT!r}); export it with peel export-onnx"
            )
        try:
            return cls(
                size=int(props[KEY_SIZE]),
                stride=int(props[KEY_STRIDE]),
                normalisation=props[KEY_NORMALISATION],
                method=props.get(KEY_METHOD, "?"),
                source=props.get(KEY_SOURCE, "?"),
                version=props.get(KEY_VERSION, "?"),
            )
        except (KeyError, ValueError) as exc:
            raise ModelMetadataError(f"{where}: incomplete Peel metadata ({exc})") from exc
