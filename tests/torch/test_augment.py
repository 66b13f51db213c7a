"""View augmentations and the contrastive agreement term used by the quality recipes."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from conftest import small_config  # noqa: E402

from imgret.train import augment  # noqa: E402


def test_colour_jitter_changes_colour_but_stays_in_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    y = augment.colour_jitter(x, g, amount=0.4, hue=0.08)
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert float((y - x).abs().mean()) > 0.01
    same = augment.colour_jitter(x, torch.Generator().manual_seed(0), amount=0.0, hue=0.0)
    assert torch.allclose(same, x, atol=1e-5)


def test_rotated_view_of_a_centred_square_keeps_it_centred():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, 12:20, 12:20] = 1.0
    y = augment.random_view(x, g, min_scale=1.0, max_shift=0.0, rotate=10.0)
    assert float(y[0, :, 14:18, 14:18].mean()) > 0.9
    assert float(y[0, :, :4, :4].mean()) < 0.05


def test_nt_xent_prefers_matching_pairs():
    gen = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(8, 16, generator=gen), dim=1)
    matched = augment.nt_xent(z, z + 0.01 * torch.randn(8, 16, generator=gen), 0.2)
    shuffled = augment.nt_xent(z, z[torch.randperm(8, generator=gen)], 0.2)
    assert float(matched) < float(shuffled)
    assert float(matched) < math.log(15)


def test_contrastive_recipe_pulls_two_views_of_a_picture_together(pictures, tmp_path):
    from imgret.train import train
    from imgret.train.checkpoint import build_from_checkpoint, load_checkpoint
    from imgret.train.data import load_pictures
    from imgret.train.models import build_autoencoder, to_model_input

    config = small_config(pictures, tmp_path / "run", invariance=1.0, invariance_loss="contrastive",
                          colour_jitter=0.3, rotate=8.0, decoder="light", augment=True)
    result = train(config)
    assert math.isfinite(result.val_loss)
    # The agreement term (the objective less its reconstruction part) falls from one epoch to the next.
    history = json.loads((tmp_path / "run" / "loss.json").read_text())
    agreement = [row["train_loss"] - row["train_mse"] for row in history]
    assert agreement[1] < 0.9 * agreement[0], agreement
    # On fresh views of the pictures, the trained encoder tells a picture's other view from the other
    # pictures' views better than the same encoder untrained.
    resolved = config.resolved()
    torch.manual_seed(resolved.seed)
    untrained = build_autoencoder(resolved).eval()
    trained = build_from_checkpoint(load_checkpoint(tmp_path / "run" / "last.pt"))
    x = to_model_input(torch.cat([d.batch(len(d)) for d in load_pictures(resolved, str(tmp_path / "run")).all()]))
    gen = torch.Generator().manual_seed(1)
    v1, v2 = (augment.colour_jitter(augment.random_view(x, gen, rotate=8.0), gen, amount=0.3) for _ in range(2))
    with torch.no_grad():
        before, after = (float(augment.nt_xent(m.encoder(v1), m.encoder(v2), 0.2)) for m in (untrained, trained))
    assert after < before - 0.01, (before, after)


def test_projector_head_trains_and_is_not_exported(pictures, tmp_path):
    import onnxruntime as ort

    from imgret.export import export_encoder
    from imgret.train import train

    config = small_config(pictures, tmp_path / "run", invariance=1.0, invariance_loss="contrastive",
                          projector=True, decoder="light", augment=True, latent_dim=32)
    train(config)
    out = export_encoder(tmp_path / "run", tmp_path / "e.onnx")
    sess = ort.InferenceSession(str(out.path))
    assert sess.get_outputs()[0].shape[1] == 32  # the embedding, not the 128-d projection


def test_dataloader_workers_train_like_the_main_process(pictures, tmp_path):
    from imgret.train import train

    one = train(small_config(pictures, tmp_path / "w0", epochs=1, workers=0))
    two = train(small_config(pictures, tmp_path / "w2", epochs=1, workers=2))
    assert math.isclose(one.val_loss, two.val_loss, rel_tol=1e-5)


def test_width_sets_the_conv_encoder_channels_and_exports(pictures, tmp_path):
    import onnxruntime as ort

    from imgret.export import export_encoder
    from imgret.train import train
    from imgret.train.checkpoint import build_from_checkpoint, load_checkpoint

    train(small_config(pictures, tmp_path / "run", width=16, epochs=1, latent_dim=24))
    model = build_from_checkpoint(load_checkpoint(tmp_path / "run" / "best.pt"))
    convs = [m for m in model.encoder.modules() if m.__class__.__name__ == "Conv2d"]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128]
    out = export_encoder(tmp_path / "run", tmp_path / "e.onnx")
    assert out.info.training["recipe"]["width"] == 16
    assert ort.InferenceSession(str(out.path)).get_outputs()[0].shape[1] == 24


def test_width_out_of_range_is_refused(pictures, tmp_path):
    from imgret.errors import TrainingError

    with pytest.raises(TrainingError, match="--width"):
        small_config(pictures, tmp_path / "run", width=4).resolved()


def _square_picture(n: int = 6, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(n, 3, size, size, generator=gen) * 0.2 + 0.4
    x[:, 0, 4:12, 4:20] = 1.0  # an off-centre red bar: turns and shrinks show
    return x


def test_heavy_edits_are_off_at_zero_and_change_every_picture_at_one():
    x = _square_picture()
    assert torch.equal(augment.heavy_edits(x, torch.Generator().manual_seed(0)), x)
    for name in ("rot90", "grey", "caption_p", "border_p", "blur_p", "canvas_p"):
        y = augment.heavy_edits(x, torch.Generator().manual_seed(0), **{name: 1.0})
        assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1, name
        assert all(not torch.allclose(y[i], x[i]) for i in range(len(x))), name


def test_each_heavy_edit_does_what_it_says():
    x = _square_picture()
    turned = augment.rotate90(x, torch.Generator().manual_seed(1), 1.0)
    assert all(any(torch.equal(turned[i], torch.rot90(x[i], k, dims=(1, 2))) for k in (1, 2, 3)) for i in range(6))
    grey = augment.greyscale(x, torch.Generator().manual_seed(1), 1.0)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    captioned = augment.caption(x, torch.Generator().manual_seed(1), 1.0)
    changed = (captioned != x).any(dim=1).float().mean(dim=(1, 2))
    assert bool(((changed > 0.03) & (changed < 0.2)).all())  # about a tenth of each picture
    boxed = augment.border(x, torch.Generator().manual_seed(1), 1.0)
    for pic in boxed:  # plain bars on two opposite sides
        rows, cols = pic[:, :2].reshape(3, -1), pic[:, :, :2].reshape(3, -1)
        assert float(rows.std(dim=1).max()) < 1e-6 or float(cols.std(dim=1).max()) < 1e-6
    shot = augment.canvas(x, torch.Generator().manual_seed(1), 1.0)
    corners = torch.stack([shot[:, :, 0, 0], shot[:, :, 0, -1], shot[:, :, -1, 0], shot[:, :, -1, -1]], dim=2)
    assert bool(((corners.max(dim=2).values - corners.min(dim=2).values) < 1e-6).all())  # plain canvas around it
    blurred = augment.blur(x, torch.Generator().manual_seed(1), 1.0)
    edges = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert float(edges(blurred)) < 0.8 * float(edges(x))


def test_heavy_edit_options_reach_the_training_views(pictures, tmp_path):
    from imgret.train import train

    result = train(small_config(pictures, tmp_path / "run", epochs=1, augment=True, rot90=0.5, greyscale=0.3,
                                caption=0.3, border=0.3, blur=0.3, canvas=0.3))
    assert result.epochs == 1 and math.isfinite(result.train_loss)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["rot90"], saved["canvas"]) == (0.5, 0.3)
