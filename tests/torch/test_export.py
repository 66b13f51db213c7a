"""Export: the ONNX file matches PyTorch, describes itself, mirrors with flip TTA, and quantises."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from imgret.errors import ExportError  # noqa: E402
from imgret.runtime.modelinfo import ModelInfo  # noqa: E402


def _embed(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["embedding"], {"image": images})[0]


@pytest.mark.parametrize("arch", ["conv", "seed"])
def test_export_matches_pytorch_and_carries_metadata(trained_runs, tmp_path, arch):
    from imgret.export import export_encoder
    from imgret.export.samples import synthetic_images
    from imgret.train import load_encoder

    result = export_encoder(trained_runs[arch], tmp_path / "enc.onnx")
    assert result.parity.max_abs_diff <= 1e-4 and result.parity.source == "validation images"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert info == result.info
    assert (info.arch, info.input_size, info.metric, info.l2_normalised) == (arch, 32, "cosine", True)
    assert info.embedding_dim == (128 if arch == "conv" else 16)
    best_epoch = torch.load(trained_runs[arch] / "best.pt", weights_only=True)["epoch"]
    assert info.training["count"] == 24 and info.training["data"] == "data"
    assert info.training["epochs"] == best_epoch  # the exported weights are best.pt's
    assert len(info.weights_sha256) == 64 and info.imgret_version

    images = synthetic_images(5, 32)  # batch size differs from the export's dummy: dynamic axis
    got = _embed(result.path, images)
    with torch.no_grad():
        expected = load_encoder(trained_runs[arch])(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_flip_tta_gives_the_same_embedding_for_a_picture_and_its_mirror(trained_runs, tmp_path):
    from imgret.export import export_encoder
    from imgret.export.samples import synthetic_images

    result = export_encoder(trained_runs["conv"], tmp_path / "tta.onnx", flip_tta=True)
    assert result.info.flip_tta
    images = synthetic_images(3, 32)
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    np.testing.assert_allclose(_embed(result.path, images), _embed(result.path, mirrored), atol=1e-6)


def test_int8_export_writes_a_second_file_that_keeps_the_neighbours(trained_runs, tmp_path):
    from imgret.export import export_encoder
    from imgret.export.quantize import topk_sets
    from imgret.export.samples import synthetic_images

    result = export_encoder(trained_runs["conv"], tmp_path / "enc.onnx", int8=True)
    assert (tmp_path / "enc.int8.onnx").is_file() and result.int8.path == str(tmp_path / "enc.int8.onnx")
    assert result.int8.count == 8 and result.int8.min_cosine > 0.99
    session = ort.InferenceSession(result.int8.path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["imgret.quantization"] == "int8-static-qdq"
    assert ModelInfo.from_metadata(meta).embedding_dim == 128
    # On pictures it was not calibrated on, int8 gives nearly the vectors and mostly the neighbours of fp32.
    images = synthetic_images(64, 32, seed=7)
    fp32, int8 = _embed(result.path, images), _embed(result.int8.path, images)
    cosines = (fp32 * int8).sum(axis=1) / np.linalg.norm(int8, axis=1)
    assert cosines.min() > 0.99
    overlap = np.mean([len(a & b) / 5 for a, b in zip(topk_sets(fp32, 5), topk_sets(int8, 5), strict=True)])
    assert overlap >= 0.6, overlap


def test_failed_parity_leaves_no_file(trained_runs, tmp_path, monkeypatch):
    from imgret.export import export_encoder, parity

    monkeypatch.setattr(parity, "MAX_ABS_DIFF", -1.0)  # no export can be that close
    with pytest.raises(ExportError, match="disagree"):
        export_encoder(trained_runs["seed"], tmp_path / "out" / "bad.onnx", int8=True)
    assert list(tmp_path.iterdir()) == []


def test_export_falls_back_to_synthetic_pictures_when_data_is_gone(pictures, tmp_path):
    import shutil

    from conftest import small_config

    from imgret.export import export_encoder
    from imgret.train import train

    train(small_config(pictures, tmp_path / "run", arch="seed", epochs=1))
    shutil.rmtree(pictures)
    result = export_encoder(tmp_path / "run" / "last.pt", tmp_path / "enc.onnx")
    assert result.parity.source == "synthetic images"
