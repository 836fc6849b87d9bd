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


# What a runtime accepts (README, "Using a model Peel did not make"): Peel trains 32, 64 or 128 px;
# twice the largest leaves room for other models while a wrong size cannot take gigabytes per
# photo (peel.size=2000 took 7.6 GB). The stride divides the padded input, so it must be a power
# of two no larger than the size (1: any size works, as for the encoder segmenter).
MIN_SIZE, MAX_SIZE = 16, 256


class ModelMetadataError(Exception):
    """The ONNX file is not a Peel segmenter or its metadata is incomplete."""


class ModelContractError(Exception):
    """The model's output breaks the documented contract (shape, rank, range): every photo would
    fail the same way, so the export stops at the first batch with this one-line reason."""


def check_size_and_stride(size: int, stride: int, where: str = "model") -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ModelMetadataError(
            f"{where}: {KEY_SIZE} is {size}; a segmenter's training size must be between "
            f"{MIN_SIZE} and {MAX_SIZE} px"
        )
    if stride < 1 or stride & (stride - 1) or stride > size:
        raise ModelMetadataError(
            f"{where}: {KEY_STRIDE} is {stride}; it must be a power of two (1, 2, 4, ...) "
            f"no larger than {KEY_SIZE} ({size})"
        )


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
            meta = cls(
                size=int(props[KEY_SIZE]),
                stride=int(props[KEY_STRIDE]),
                normalisation=props[KEY_NORMALISATION],
                method=props.get(KEY_METHOD, "?"),
                source=props.get(KEY_SOURCE, "?"),
                version=props.get(KEY_VERSION, "?"),
            )
        except KeyError as exc:
            raise ModelMetadataError(f"{where}: incomplete Peel metadata (no {exc})") from exc
        except ValueError as exc:
            raise ModelMetadataError(f"{where}: {KEY_SIZE} and {KEY_STRIDE} must be whole "
                                     f"numbers ({exc})") from exc
        check_size_and_stride(meta.size, meta.stride, where)
        return meta
