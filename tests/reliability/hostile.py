"""Hostile inputs of issue #15, made on the spot: file-system oddities, decompression bombs and
ONNX models that lie about themselves. Shared by the tests and ``bench/bad_input.py``.

Bombs are written by hand, a little at a time, so making one never allocates what decoding it
would; hand-written ONNX graphs (no torch export) keep the model cases at milliseconds.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from engine.export.metadata import FORMAT, ModelMetadata

# ---------------------------------------------------------------------------------------------
# TIFF


def tiff_bytes(width: int, height: int, *, big_endian: bool = False, bigtiff: bool = False,
               strip: bytes = b"", compression: int = 8, bits: int = 8) -> bytes:
    """A one-strip greyscale TIFF whose directory sits after its pixel data (as in many files).

    ``strip`` is the (compressed) pixel data; an empty one makes a header-only file that a
    decoder would have to allocate the whole image for before finding the data missing.
    """
    e = ">" if big_endian else "<"
    order = b"MM" if big_endian else b"II"
    tags = [  # (tag, type, value); type 3 SHORT, 4 LONG
        (256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, compression),
        (262, 3, 1), (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(strip)),
    ]
    head = 16 if bigtiff else 8
    data_at = head
    ifd_at = data_at + len(strip) + (len(strip) % 2)
    tags = [(t, ty, data_at if t == 273 else v) for t, ty, v in tags]
    if bigtiff:
        out = order + struct.pack(e + "HHHQ", 43, 8, 0, ifd_at)
        entry = "HHQQ"
        count = struct.pack(e + "Q", len(tags))
        tail = struct.pack(e + "Q", 0)
    else:
        out = order + struct.pack(e + "HI", 42, ifd_at)
        entry = "HHII"
        count = struct.pack(e + "H", len(tags))
        tail = struct.pack(e + "I", 0)
    out += strip + b"\x00" * (len(strip) % 2)
    body = b""
    for tag, typ, value in tags:  # values are left-justified in the value field
        field = struct.pack(e + ("H" if typ == 3 else "I"), value).ljust(8 if bigtiff else 4, b"\x00")
        body += struct.pack(e + entry[:3], tag, typ, 1) + field
    return out + count + body + tail


def deflate_zeros(nbytes: int, chunk: int = 1 << 24) -> bytes:
    """zlib stream of ``nbytes`` zero bytes, compressed chunk by chunk (small memory)."""
    comp = zlib.compressobj(9)
    zero = bytes(chunk)
    parts = []
    left = nbytes
    while left:
        n = min(left, chunk)
        parts.append(comp.compress(zero[:n]))
        left -= n
    parts.append(comp.flush())
    return b"".join(parts)


def tiff_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid deflate TIFF of ``width`` x ``height`` zero pixels: ~0.4 MB per 400 megapixels."""
    return tiff_bytes(width, height, strip=deflate_zeros(width * height))


def png_header_only(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG signature + IHDR (+ empty IEND) announcing any size."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------
# File-system entries


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def link(path: Path, target: str | os.PathLike[str]) -> Path:
    os.symlink(target, path)
    return path


def sparse_file(path: Path, nbytes: int) -> Path:
    """A file of ``nbytes`` that takes no disk space (and no time) to make."""
    with open(path, "wb") as fh:
        fh.truncate(nbytes)
    return path


# ---------------------------------------------------------------------------------------------
# ONNX models


def contract_model(path: Path, *, output: str = "ok", size: int = 64, stride: int = 16,
                   props: dict[str, str] | None = None, input_name: str = "image",
                   ir_version: int | None = None) -> Path:
    """A hand-written segmenter following (or breaking) the documented contract.

    ``output``: ``ok`` (sigmoid of the mean colour: a valid probability map), ``nan`` (0/0),
    ``half`` (half the input's height and width), ``rank3`` ((N, H, W), declared so),
    ``logits`` (values outside [0, 1]).
    """
    n_h_w = ["N", 3, "H", "W"]
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, n_h_w)
    nodes = [helper.make_node("ReduceMean", [input_name, "axes"], ["mean"], keepdims=1)]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
    out_shape: list = ["N", 1, "H", "W"]
    if output == "ok":
        nodes.append(helper.make_node("Sigmoid", ["mean"], ["prob"]))
    elif output == "nan":
        inits.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
        nodes += [helper.make_node("Mul", ["mean", "zero"], ["z"]),
                  helper.make_node("Div", ["z", "z"], ["prob"])]
    elif output == "half":
        nodes += [helper.make_node("Sigmoid", ["mean"], ["s"]),
                  helper.make_node("MaxPool", ["s"], ["prob"], kernel_shape=[2, 2], strides=[2, 2])]
        out_shape = ["N", 1, "H2", "W2"]
    elif output == "rank3":
        nodes.append(helper.make_node("ReduceMean", [input_name, "axes"], ["prob"], keepdims=0))
        out_shape = ["N", "H", "W"]
    elif output == "logits":
        inits.append(helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0]))
        nodes.append(helper.make_node("Mul", ["mean", "ten"], ["prob"]))
    else:
        raise ValueError(output)
    y = helper.make_tensor_value_info("prob", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, "hostile", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = ir_version if ir_version is not None else 8
    meta = ModelMetadata(size=size, stride=stride, normalisation="rgb/127.5-1", method="test",
                         source="test", version="0").to_props()
    meta.update(props or {})
    assert meta["peel.format"] == FORMAT or props
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, os.fspath(path))
    return path


def photo_folder(folder: Path, count: int = 4, h: int = 40, w: int = 56) -> Path:
    """``count`` small PNG photos with structure."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (255, 255, 255), -1)
        ok, buf = cv2.imencode(".png", img)
        assert ok
        (folder / f"photo_{i:02d}.png").write_bytes(buf.tobytes())
    return folder
