"""ONNX export: one self-contained file, honest metadata, and the same masks as torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_helpers import TINY_SIZE, exported_run, shapes_photo

from engine import __version__


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_run(tmp_path_factory)


def test_export_is_one_file_with_metadata_and_dynamic_shapes(run_dir: Path) -> None:
    assert sorted(p.name for p in run_dir.iterdir()) == ["segmenter.onnx", "segmenter.pt"]
    model = onnx.load(str(run_dir / "segmenter.onnx"), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["peel.format"] == "peel-segmenter-1"
    assert props["peel.size"] == str(TINY_SIZE)
    assert props["peel.stride"] == "8"
    assert props["peel.normalisation"] == "rgb/127.5-1"
    assert props["peel.method"] == "ilgan"
    assert props["peel.version"] == __version__
    assert props["peel.source"] == "horses"  # the folder's name, not the user's full path
    assert "multiples of peel.stride" in props["peel.input"]
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "image" and dims[1].dim_value == 3
    assert all(d.dim_param for d in (dims[0], dims[2], dims[3])), "batch, H and W must be dynamic"


def test_onnx_masks_match_torch_on_odd_sizes(run_dir: Path) -> None:
    from engine.export.sessions import SegmenterSession
    from engine.segmenter.infer import predict_soft
    from engine.segmenter.model import load_segmenter

    photos = [shapes_photo(333, 517), shapes_photo(97, 61)]
    net, info = load_segmenter(run_dir / "segmenter.pt")
    expected = predict_soft(net, photos, info.size)
    session = SegmenterSession(run_dir / "segmenter.onnx", device="cpu")
    assert session.provider == "CPUExecutionProvider"
    assert (session.size, session.stride) == (TINY_SIZE, 8)
    got = session.predict_soft(photos)
    for photo, e, g in zip(photos, expected, got, strict=True):
        assert g.shape == photo.shape[:2] == e.shape
        soft_band = float(((e > 0.05) & (e < 0.95)).mean())
        assert float(e.std()) > 0.05 and soft_band > 0.02, "test model must give a varied mask"
        assert float(np.abs(g - e).max()) < 1e-4


def test_session_rejects_sizes_off_the_stride(run_dir: Path) -> None:
    from engine.export.sessions import SegmenterSession

    session = SegmenterSession(run_dir / "segmenter.onnx", device="cpu")
    out = session.run(np.zeros((3, 3, 16, 24), np.float32))
    assert out.shape == (3, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        session.run(np.zeros((1, 3, 20, 24), np.float32))


def test_cuda_request_without_gpu_reports_the_cpu(run_dir: Path) -> None:
    import torch

    from engine.export.sessions import SegmenterSession

    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the fallback cannot be observed")
    session = SegmenterSession(run_dir / "segmenter.onnx", device="cuda")
    assert session.provider == "CPUExecutionProvider"
    assert session.warning and "CPU" in session.warning


def test_foreign_onnx_file_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from engine.export.sessions import ModelLoadError, SegmenterSession

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    model = helper.make_model(graph, ir_version=9, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="not a Peel segmenter"):
        SegmenterSession(path, device="cpu")
    with pytest.raises(ModelLoadError, match="no such model"):
        SegmenterSession(tmp_path / "missing.onnx", device="cpu")


def test_export_cli_reports_a_missing_segmenter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.main import main

    assert main(["export-onnx", str(tmp_path)]) == 2
    assert "no segmenter.pt" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("target", ["peel", "rembg"])
@pytest.mark.parametrize(("where", "expected"), [("folder", "is a folder"),
                                                 ("a file/m.onnx", "a file is in the way")])
def test_an_output_that_cannot_be_written_is_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, where: str,
    expected: str,
) -> None:
    """An existing folder as --out, or a file in the way of its folder (as a read-only mount),
    ended in a traceback at the final rename, after the whole export."""
    from engine.cli.main import main

    (tmp_path / "folder").mkdir()
    (tmp_path / "a file").write_text("x")
    code = main(["export-onnx", str(run_dir), "--out", str(tmp_path / where), "--target", target])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("peel export-onnx: error: ")
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []
