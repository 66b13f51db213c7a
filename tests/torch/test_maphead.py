"""The feature-map head (PCA of the encoder's last feature map), adding heads to a finished run, and
the cheaper seed decoder options (width, half decoder, one reconstructed view)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import small_config  # noqa: E402

from imgret.train.maphead import MapHead, fit_map_head, map_features  # noqa: E402


def test_fit_map_head_finds_the_principal_axes_of_the_square_rooted_maps():
    gen = torch.Generator().manual_seed(0)
    # Mirror-symmetric maps [6, 2, 2] whose square-rooted left halves vary along two known directions.
    axes = torch.nn.functional.normalize(torch.rand(2, 12, generator=gen), dim=1)
    axes[1] -= (axes[1] @ axes[0]) * axes[0]
    axes[1] /= axes[1].norm()
    coeff = torch.randn(500, 2, generator=gen) * torch.tensor([3.0, 1.0])
    half = (5.0 + coeff @ axes + 0.01 * torch.randn(500, 12, generator=gen)).reshape(500, 6, 2, 1)
    rooted = torch.cat([half, half], dim=3)
    maps = rooted**2
    full_axes = torch.nn.functional.normalize(torch.cat([axes.reshape(2, 6, 2, 1)] * 2, dim=3).reshape(2, 24), dim=1)
    head = MapHead(24, 2)
    report = fit_map_head((maps[s:s + 64] for s in range(0, 500, 64)), head)  # streamed in uneven batches
    assert int(head.fitted) == 1 and report["points"] == 500 and report["explained_variance"] > 0.99
    assert torch.allclose(head.mean, rooted.reshape(500, 24).mean(dim=0), atol=1e-4)
    # The first axis is the high-variance direction, the second the other one (up to sign).
    assert abs(float(head.components[:, 0] @ full_axes[0])) > 0.995
    assert abs(float(head.components[:, 1] @ full_axes[1])) > 0.98
    out = head(maps)
    assert torch.allclose(out.mean(dim=0), torch.zeros(2), atol=1e-3)
    assert float(out[:, 0].std()) > 2.5 * float(out[:, 1].std())
    # The variance along each axis is kept; whitening scales each axis by variance ** -whiten.
    assert torch.allclose(head.variances, out.var(dim=0), rtol=1e-3)
    full = head(maps, whiten=0.5)
    assert torch.allclose(full.std(dim=0), torch.ones(2), atol=1e-3)
    ratio = head(maps, whiten=0.25).std(dim=0)
    assert abs(float(ratio[0] / ratio[1]) - float(out[:, 0].std() / out[:, 1].std()) ** 0.5) < 1e-3


def test_a_map_head_saved_without_variances_loads_and_is_refused_for_whitening(pictures, tmp_path):
    from imgret.errors import TrainingError
    from imgret.train import add_heads, train
    from imgret.train.checkpoint import (
        build_from_checkpoint,
        checkpoint_config,
        embedding_model,
        load_checkpoint,
        save_checkpoint,
    )

    run = tmp_path / "run"
    train(small_config(pictures, run, arch="seed", latent_dim=6, width=8, map_dim=3, epochs=1))
    for name in ("best.pt", "last.pt"):  # as imgret wrote map heads before it kept their variances
        state = load_checkpoint(run / name)
        del state["model"]["map_head.variances"]
        save_checkpoint(run / name, state)
    state = load_checkpoint(run / "last.pt")
    model, config = build_from_checkpoint(state), checkpoint_config(state)
    assert not model.map_head.has_variances()
    batch = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    plain = embedding_model(model, config, map_whiten=0.0)(batch)
    with pytest.raises(TrainingError, match="before imgret kept its variances"):
        embedding_model(model, config)  # the config's default whitening needs them
    # Refitting the map head (add_heads with map settings) records them; the encoder is the same.
    add_heads(run, map_dim=3)
    state = load_checkpoint(run / "last.pt")
    refitted = build_from_checkpoint(state)
    assert refitted.map_head.has_variances()
    assert torch.allclose(embedding_model(refitted, config, map_whiten=0.0)(batch), plain, atol=1e-5)
    whitened = embedding_model(refitted, config, map_whiten=0.5)(batch)
    assert not torch.allclose(whitened, plain, atol=1e-3)


def test_map_features_are_mirror_symmetric_and_ignore_negative_values():
    fmap = torch.tensor([[[[-4.0, 12.0], [-9.0, 41.0]], [[-6.0, 2.0], [0.0, 0.0]]]])
    assert map_features(fmap).tolist() == [[2.0, 2.0, 4.0, 4.0, 0.0, 0.0, 0.0, 0.0]]
    assert torch.equal(map_features(torch.flip(fmap, dims=[3])), map_features(fmap))


def test_map_run_exports_code_and_map_side_by_side_and_mirror_averages(pictures, tmp_path):
    import onnxruntime as ort

    from imgret.export import export_encoder
    from imgret.train import train
    from imgret.train.checkpoint import load_checkpoint

    train(small_config(pictures, tmp_path / "run", arch="seed", latent_dim=12, width=8, map_dim=5, map_weight=2.0))
    state = load_checkpoint(tmp_path / "run" / "best.pt")
    assert int(state["model"]["map_head.fitted"]) == 1
    assert json.loads(state["map"])["features"] == 16 * 8 * 8  # seed: 2 x width channels on a 8x8 grid
    out = export_encoder(tmp_path / "run", tmp_path / "e.onnx", flip_tta=True)
    assert out.info.embedding_dim == 17 and out.info.training["recipe"]["map_dim"] == 5
    assert out.info.training["recipe"]["map_weight"] == 2.0 and out.info.training["recipe"]["map_whiten"] == 0.35
    assert out.parity.max_abs_diff < 1e-4
    sess = ort.InferenceSession(str(out.path))
    batch = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    vec = sess.run(None, {"image": batch})[0]
    assert vec.shape == (4, 17)
    assert np.allclose((vec[:, 12:] ** 2).sum(axis=1), 0.8, atol=1e-4)  # 2^2 / (1 + 2^2)
    # With mirror averaging and the head's mirror-symmetric map, a picture and its mirror embed alike.
    mirrored = sess.run(None, {"image": np.ascontiguousarray(batch[:, :, ::-1])})[0]
    assert np.allclose(vec, mirrored, atol=1e-5)


def test_too_large_a_feature_map_is_refused(pictures, tmp_path):
    from imgret.errors import TrainingError
    from imgret.train.models import build_autoencoder

    config = small_config(pictures, tmp_path / "run", arch="seed", image_size=64, width=64, map_dim=8).resolved()
    with pytest.raises(TrainingError, match="feature map of at most"):
        build_autoencoder(config)


def test_add_heads_fits_new_heads_on_a_finished_run_without_training(pictures, tmp_path, imgret):
    from imgret.errors import TrainingError
    from imgret.train import add_heads, train
    from imgret.train.checkpoint import load_checkpoint

    run = tmp_path / "run"
    train(small_config(pictures, run, epochs=1, latent_dim=8))
    before = load_checkpoint(run / "last.pt")
    result = add_heads(run, map_dim=3, graph_dim=2, graph_neighbours=4, graph_epochs=1)
    assert result.epochs == 1
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(run / name)
        assert json.loads(state["config"])["map_dim"] == 3
        assert int(state["model"]["map_head.fitted"]) == 1 and int(state["model"]["graph_head.fitted"]) == 1
        # The encoder is untouched.
        for key, value in before["model"].items():
            assert torch.equal(state["model"][key], value), key
    assert json.loads((run / "config.json").read_text())["graph_dim"] == 2
    # A graph head is not changed, and unknown settings are named; a map head is fitted again.
    graph = {k: v for k, v in load_checkpoint(run / "last.pt")["model"].items() if k.startswith("graph_head.")}
    with pytest.raises(TrainingError, match="already has a graph head"):
        add_heads(run, graph_dim=3)
    with pytest.raises(TrainingError, match="not a head setting: epochs"):
        add_heads(run, epochs=3)
    add_heads(run, map_dim=4)
    state = load_checkpoint(run / "last.pt")
    assert state["model"]["map_head.components"].shape[1] == 4 and int(state["model"]["map_head.fitted"]) == 1
    assert all(torch.equal(state["model"][k], v) for k, v in graph.items())
    exported = imgret("export", str(run), "-o", str(tmp_path / "e.onnx"))
    assert exported.code == 0, exported.stderr
    assert "14-d" in exported.stdout  # 8 code + 4 map + 2 graph


def test_add_heads_refuses_an_unfinished_run_and_the_cli_routes_resume_with_heads(pictures, tmp_path, imgret):
    from imgret.train import add_heads, train
    from imgret.train.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    train(small_config(pictures, run, epochs=1, latent_dim=8))
    result = imgret("train", str(pictures), "--out", str(run), "--resume", "--map-dim", "4")
    assert result.code == 0, result.stderr
    assert "map head for best.pt" in result.stderr
    assert json.loads(load_checkpoint(run / "last.pt")["config"])["map_dim"] == 4
    import onnxruntime as ort

    exported = imgret("export", str(run), "-o", str(tmp_path / "e.onnx"), "--map-weight", "3")
    assert exported.code == 0, exported.stderr
    batch = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    vec = ort.InferenceSession(str(tmp_path / "e.onnx")).run(None, {"image": batch})[0]
    assert vec.shape == (3, 12) and np.allclose((vec[:, 8:] ** 2).sum(axis=1), 0.9, atol=1e-4)  # 3^2 / (1 + 3^2)
    # --map-whiten is recorded and changes the map part only.
    for whiten in ("0", "0.5"):
        exported = imgret("export", str(run), "-o", str(tmp_path / f"w{whiten}.onnx"), "--map-whiten", whiten)
        assert exported.code == 0, exported.stderr
    sessions = {w: ort.InferenceSession(str(tmp_path / f"w{w}.onnx")) for w in ("0", "0.5")}
    plain, whitened = (sessions[w].run(None, {"image": batch})[0] for w in ("0", "0.5"))
    assert np.allclose(plain[:, :8], whitened[:, :8], atol=1e-5)
    assert not np.allclose(plain[:, 8:], whitened[:, 8:], atol=1e-3)
    from imgret.runtime.encoder import Encoder

    assert Encoder(tmp_path / "w0.5.onnx").info.training["recipe"]["map_whiten"] == 0.5
    bad = imgret("export", str(run), "-o", str(tmp_path / "bad.onnx"), "--map-whiten", "2")
    assert bad.code == 2 and "--map-whiten" in bad.stderr
    state = load_checkpoint(run / "last.pt")
    state["epoch"] = 0
    save_checkpoint(run / "last.pt", state)
    from imgret.errors import TrainingError

    with pytest.raises(TrainingError, match="has not finished"):
        add_heads(run, graph_dim=2)


def test_seed_width_half_decoder_and_one_reconstructed_view(pictures, tmp_path):
    from imgret.train import train
    from imgret.train.checkpoint import build_from_checkpoint, load_checkpoint
    from imgret.train.epoch import batch_loss
    from imgret.train.models import build_autoencoder

    config = small_config(pictures, tmp_path / "run", arch="seed", width=8, decoder="half", recon_views=1,
                          latent_dim=6, augment=True, invariance=1.0, invariance_loss="contrastive",
                          projector=True).resolved()
    model = build_autoencoder(config)
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16]
    deconvs = [m for m in model.decoder_body if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in deconvs] == [32, 16]  # half the port's (64, 32)
    seen = []
    model.decoder_body.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[0]))
    loss, mse = batch_loss(model, torch.rand(5, 3, 32, 32), config, torch.Generator().manual_seed(0))
    assert seen == [5] and torch.isfinite(loss) and float(mse) > 0  # one view of 5 decoded, both encoded
    train(config)
    assert build_from_checkpoint(load_checkpoint(tmp_path / "run" / "best.pt")).encoder[0].out_channels == 8


def test_recon_views_out_of_range_is_refused(pictures, tmp_path):
    from imgret.errors import TrainingError

    with pytest.raises(TrainingError, match="--recon-views"):
        small_config(pictures, tmp_path / "run", recon_views=3).resolved()


def test_map_head_on_a_single_picture_is_a_clear_error(tmp_path):
    from conftest import write_pictures

    from imgret.errors import TrainingError
    from imgret.train import train

    write_pictures(tmp_path / "one", 1)
    with pytest.raises(TrainingError, match="at least 2 pictures"):
        train(small_config(tmp_path / "one", tmp_path / "run", epochs=1, val_split=0.0, map_dim=2))
    assert (tmp_path / "run" / "last.pt").exists()  # the trained epoch is kept


def test_heads_are_fitted_for_best_pt_and_last_pt_of_a_later_epoch_waits_for_resume(pictures, tmp_path, imgret):
    import io
    import shutil

    from imgret.errors import ExportError
    from imgret.export import export_encoder
    from imgret.train import fit_heads, train
    from imgret.train.checkpoint import load_checkpoint

    run = tmp_path / "run"
    config = small_config(pictures, run, arch="seed", latent_dim=6, width=8, epochs=2, map_dim=3)
    train(config, on_epoch_end=lambda epoch, _row: shutil.copy(run / "last.pt", run / f"epoch{epoch}.pt"))
    # As when the first epoch validated best: best.pt is epoch 1 and last.pt epoch 2, neither with heads.
    shutil.copy(run / "epoch1.pt", run / "best.pt")
    shutil.copy(run / "epoch2.pt", run / "last.pt")
    log = io.StringIO()
    fit_heads(str(run), config.resolved(), stream=log)
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert (int(best["epoch"]), int(last["epoch"])) == (1, 2)
    assert int(best["model"]["map_head.fitted"]) == 1 and int(last["model"]["map_head.fitted"]) == 0
    assert "last.pt (epoch 2) keeps its heads unfitted" in log.getvalue()
    export_encoder(run, tmp_path / "best.onnx")  # the run folder exports best.pt
    with pytest.raises(ExportError, match="never fitted"):
        export_encoder(run / "last.pt", tmp_path / "last.onnx")
    # --resume on the finished run fits last.pt's heads, without touching best.pt or training.
    result = imgret("train", str(pictures), "--out", str(run), "--resume")
    assert result.code == 0, result.stderr
    assert "map head for last.pt" in result.stderr and "map head for best.pt" not in result.stderr
    assert int(load_checkpoint(run / "last.pt")["model"]["map_head.fitted"]) == 1
    assert torch.equal(load_checkpoint(run / "best.pt")["model"]["map_head.components"],
                       best["model"]["map_head.components"])
    export_encoder(run / "last.pt", tmp_path / "last.onnx")


def test_fewer_pictures_than_features_give_the_covariance_axes_quickly():
    gen = torch.Generator().manual_seed(3)
    maps = torch.rand(12, 4, 3, 3, generator=gen) ** 2  # 12 pictures, 36 features
    few, many = MapHead(36, 16), MapHead(36, 16)
    fit_map_head([maps], few)  # fewer points than features: the n x n route
    fit_map_head([maps] * 3, many)  # the same points thrice: the covariance route, same axes
    rank = 11  # 12 centred points span 11 axes; the rest carry no variance
    dots = (few.components[:, :rank] * many.components[:, :rank]).sum(dim=0)
    torch.testing.assert_close(dots, torch.ones(rank), atol=1e-4, rtol=0)
    torch.testing.assert_close(few.variances[:rank] * 11 / 12, many.variances[:rank] * 35 / 36, atol=1e-5, rtol=1e-4)
    assert float(few.components[:, rank:].abs().max()) == 0.0
