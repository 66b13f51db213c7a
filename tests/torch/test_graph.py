"""The neighbour-graph head: its graph, its fit, its place in training, export and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import small_config  # noqa: E402

from imgret.train.graph import GraphHead, fit_graph_head, fuzzy_graph, knn  # noqa: E402


def blobs(per: int = 60, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Unit vectors in three tight groups around random directions."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(3, dim, generator=gen), dim=1)
    points = torch.cat([c + 0.05 * torch.randn(per, dim, generator=gen) for c in centres])
    return torch.nn.functional.normalize(points, dim=1), np.repeat(np.arange(3), per)


def test_knn_excludes_self_and_sorts_by_distance():
    codes, _ = blobs(per=10)
    idx, dist = knn(codes, 4, chunk=7)  # a chunk size that splits the rows unevenly
    assert idx.shape == (30, 4)
    assert not (idx == torch.arange(30)[:, None]).any()
    assert torch.all(dist[:, 1:] >= dist[:, :-1])
    brute = 1 - codes @ codes.T
    brute.fill_diagonal_(float("inf"))
    assert torch.allclose(dist[:, 0], brute.min(dim=1).values, atol=1e-5)


def test_fuzzy_graph_is_symmetric_and_stays_inside_groups():
    codes, labels = blobs()
    edges, weights = fuzzy_graph(*knn(codes, 8))
    assert torch.all((weights > 0) & (weights <= 1 + 1e-6))
    pairs = {(int(a), int(b)): float(w) for a, b, w in zip(edges[0], edges[1], weights, strict=True)}
    assert all(abs(pairs[(b, a)] - w) < 1e-6 for (a, b), w in pairs.items())
    assert all(labels[a] == labels[b] for a, b in pairs)
    # Each point's nearest neighbour gets weight 1 (UMAP's local connectivity).
    assert max(pairs.values()) == pytest.approx(1.0)


def test_fitted_head_pulls_groups_together_and_records_its_centre():
    codes, labels = blobs()
    head = GraphHead(codes.shape[1], 2)
    report = fit_graph_head(codes, head, neighbours=8, epochs=8, seed=0, batch_size=256)
    assert int(head.fitted) == 1 and report["points"] == 180
    with torch.no_grad():
        out = head(codes).numpy()
    assert np.allclose(out.mean(axis=0), 0, atol=1e-4)  # centred on the training codes
    d = np.linalg.norm(out[:, None] - out[None], axis=-1)
    same = labels[:, None] == labels[None]
    assert d[same].mean() * 3 < d[~same].mean()


def test_graph_run_exports_code_and_head_side_by_side(pictures, tmp_path):
    import onnxruntime as ort

    from imgret.export import export_encoder
    from imgret.train import train
    from imgret.train.checkpoint import load_checkpoint

    train(small_config(pictures, tmp_path / "run", latent_dim=12, graph_dim=3, graph_neighbours=4,
                       graph_epochs=2, graph_weight=2.0))
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(tmp_path / "run" / name)
        assert int(state["model"]["graph_head.fitted"]) == 1
        assert json.loads(state["graph"])["neighbours"] == 4
    out = export_encoder(tmp_path / "run", tmp_path / "e.onnx", flip_tta=True)
    assert out.info.embedding_dim == 15 and out.info.latent_dim == 12
    assert out.info.training["recipe"]["graph_dim"] == 3
    assert out.parity.max_abs_diff < 1e-4
    sess = ort.InferenceSession(str(out.path))
    batch = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    vec = sess.run(None, {"image": batch})[0]
    assert vec.shape == (4, 15)
    assert np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-5)
    # Code and head parts are each unit length before the join: weight 2 puts 4/5 of the energy in the head.
    assert np.allclose((vec[:, 12:] ** 2).sum(axis=1), 0.8, atol=1e-4)


def test_export_refuses_an_unfitted_graph_head(pictures, tmp_path):
    from imgret.errors import ExportError
    from imgret.export import export_encoder
    from imgret.train import train
    from imgret.train.checkpoint import load_checkpoint, save_checkpoint

    train(small_config(pictures, tmp_path / "run", epochs=1, graph_dim=2, graph_neighbours=4, graph_epochs=1))
    path = tmp_path / "run" / "best.pt"
    state = load_checkpoint(path)
    state["model"]["graph_head.fitted"] = torch.zeros((), dtype=torch.uint8)
    save_checkpoint(path, state)
    with pytest.raises(ExportError, match="never fitted"):
        export_encoder(path, tmp_path / "e.onnx")
    assert not (tmp_path / "e.onnx").exists()


def test_resume_fits_a_missing_head_from_weights_only_checkpoints(pictures, tmp_path):
    """A finished run copied without optimiser state (say from a GPU machine) can still be finished."""
    from imgret.errors import TrainingError
    from imgret.train import train
    from imgret.train.checkpoint import load_checkpoint, save_checkpoint

    config = small_config(pictures, tmp_path / "run", epochs=2, graph_dim=2, graph_neighbours=4, graph_epochs=1)
    train(config)
    for name in ("best.pt", "last.pt"):
        path = tmp_path / "run" / name
        state = load_checkpoint(path)
        state["model"]["graph_head.fitted"] = torch.zeros((), dtype=torch.uint8)
        slim = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler", "scaler")}
        save_checkpoint(path, slim)
    train(config, resume=True)
    assert int(load_checkpoint(tmp_path / "run" / "best.pt")["model"]["graph_head.fitted"]) == 1
    # With epochs still to run, weights alone are not enough, and the run says so.
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    state["epoch"] = 1
    save_checkpoint(tmp_path / "run" / "last.pt", state)
    with pytest.raises(TrainingError, match="no optimiser state"):
        train(config, resume=True)


def test_export_can_reweight_the_graph_head(pictures, tmp_path, imgret):
    import onnxruntime as ort

    from imgret.train import train

    train(small_config(pictures, tmp_path / "run", epochs=1, latent_dim=8, graph_dim=2, graph_neighbours=4,
                       graph_epochs=1))
    result = imgret("export", str(tmp_path / "run"), "-o", str(tmp_path / "e.onnx"), "--graph-weight", "3",
                    "--no-flip-tta")
    assert result.code == 0, result.stderr
    batch = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    vec = ort.InferenceSession(str(tmp_path / "e.onnx")).run(None, {"image": batch})[0]
    assert np.allclose((vec[:, 8:] ** 2).sum(axis=1), 0.9, atol=1e-4)  # 3^2 / (1 + 3^2)
    # The head was fitted on mirror-averaged codes: exported without mirroring (the run's default is
    # with it), the export says so on stderr.
    assert "note: the graph head was fitted on codes averaged with their mirror's" in result.stderr
    assert "note:" not in result.stdout
    mirrored = imgret("export", str(tmp_path / "run"), "-o", str(tmp_path / "m.onnx"), "--flip-tta")
    assert mirrored.code == 0 and "note:" not in mirrored.stderr
    bad = imgret("export", str(tmp_path / "run"), "-o", str(tmp_path / "f.onnx"), "--graph-weight", "0")
    assert bad.code == 2 and not (tmp_path / "f.onnx").exists()


def test_graph_head_on_too_few_pictures_is_a_clear_error(tmp_path):
    from conftest import write_pictures

    from imgret.errors import TrainingError
    from imgret.train import train

    write_pictures(tmp_path / "two", 2)
    with pytest.raises(TrainingError, match="at least 3"):
        train(small_config(tmp_path / "two", tmp_path / "run", epochs=1, val_split=0.0, graph_dim=2))
    assert (tmp_path / "run" / "last.pt").exists()  # the trained epochs are kept
