"""Hostile ONNX models (issue #15): a model Peel did not make works when it follows the contract;
one that lies about its metadata, has the wrong signature or answers nonsense is refused in one
line, at load or at its first answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hostile import contract_model, photo_folder
from in_process import peel


def test_a_model_peel_did_not_make_works_when_it_follows_the_contract(tmp_path: Path,
                                                                      capsys) -> None:
    folder = photo_folder(tmp_path / "in", count=3)
    code, _, err = peel(capsys, "segment", str(folder), str(tmp_path / "out"), "--model",
                        str(contract_model(tmp_path / "m.onnx")), "--device", "cpu")
    assert code == 0, err
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


@pytest.mark.parametrize(("props", "fragment"), [
    ({"peel.size": "2000"}, "peel.size is 2000"),
    ({"peel.size": "60000"}, "peel.size is 60000"),
    ({"peel.size": "0"}, "peel.size is 0"),
    ({"peel.size": "-8"}, "peel.size is -8"),
    ({"peel.stride": "0"}, "peel.stride is 0"),
    ({"peel.stride": "-16"}, "peel.stride is -16"),
    ({"peel.stride": "12"}, "peel.stride is 12"),
    ({"peel.stride": "128"}, "peel.stride is 128"),
    ({"peel.size": "big"}, "whole numbers"),
])
def test_lying_metadata_refused_at_load(tmp_path: Path, props: dict, fragment: str) -> None:
    from engine.export.sessions import ModelLoadError, SegmenterSession

    with pytest.raises(ModelLoadError) as err:
        SegmenterSession(contract_model(tmp_path / "m.onnx", props=props), device="cpu")
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"output": "rank3"}, "output 'prob'"),
    ({"input_name": "pixels"}, "expected one input named 'image'"),
    ({"ir_version": 99}, "Unsupported model IR version: 99"),
])
def test_wrong_signature_refused_at_load_in_one_line(tmp_path: Path, kwargs: dict,
                                                      fragment: str) -> None:
    from engine.export.sessions import ModelLoadError, SegmenterSession

    with pytest.raises(ModelLoadError) as err:
        SegmenterSession(contract_model(tmp_path / "m.onnx", **kwargs), device="cpu")
    message = str(err.value)
    assert fragment in message and "\n" not in message, message
    assert "onnxruntime::" not in message and ".cc:" not in message, message  # no C++ signature


def test_model_that_answers_the_wrong_shape_stops_the_run(tmp_path: Path, capsys) -> None:
    folder = photo_folder(tmp_path / "in", count=3)
    code, _, err = peel(capsys, "segment", str(folder), str(tmp_path / "out"), "--model",
                        str(contract_model(tmp_path / "m.onnx", output="half")), "--device", "cpu")
    assert code == 1
    assert err.count("stopped early: model error") == 1 and "a Peel segmenter returns" in err
    assert not list((tmp_path / "out").glob("*.png"))


def test_nan_output_fails_each_photo_with_a_reason(tmp_path: Path, capsys) -> None:
    folder = photo_folder(tmp_path / "in", count=2)
    code, _, err = peel(capsys, "segment", str(folder), str(tmp_path / "out"), "--model",
                        str(contract_model(tmp_path / "m.onnx", output="nan")), "--device", "cpu")
    assert code == 1
    assert err.count("NaN or infinite") == 2
    assert not list((tmp_path / "out").glob("*.png"))


def test_logits_instead_of_probabilities_stop_the_run(tmp_path: Path) -> None:
    from engine.export.metadata import ModelContractError
    from engine.export.sessions import SegmenterSession

    session = SegmenterSession(contract_model(tmp_path / "m.onnx", output="logits"), device="cpu")
    with pytest.raises(ModelContractError, match="sigmoid"):
        session.run(np.ones((1, 3, 64, 64), np.float32))
