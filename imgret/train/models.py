"""The autoencoder architectures and the embedding module that export turns into ONNX.

Models take float images in ``[0, 1]``, NCHW. ``seed`` is a faithful port of the original Keras
model (two stride-2 convolutions, Flatten, Dense latent; mirrored decoder). ``conv`` is the default:
four stride-2 stages, global average pooling and a small linear head, so the encoder stays well under
2 MB whatever the image size; its decoder broadcasts the code over a small grid (with coordinate
channels) and upsamples back to the picture.
"""

from __future__ import annotations

import torch
from torch import nn

from imgret.errors import TrainingError
from imgret.train.config import TrainConfig
from imgret.train.graph import GraphHead
from imgret.train.maphead import MAX_MAP_FEATURES, MapHead, split_index

# The decoder only serves training (export keeps the encoder); "light" costs about a quarter of "full"
# and is what CPU-trained recipes use.
DECODERS = {"full": (128, 128, 64, 32, 32), "light": (128, 64, 32, 16, 16), "half": (64, 32, 16, 8, 8)}
# The seed decoder is the Keras port's (64, 32) for "full" and "light" (so runs saved before "half"
# existed still load); "half" halves its channels, about 2x cheaper to train.
SEED_DECODERS = {"full": (64, 32), "light": (64, 32), "half": (32, 16)}


class SeedAutoencoder(nn.Module):
    """Port of the original Keras autoencoder: Conv(32)/Conv(64) stride 2, ReLU then BatchNorm.

    ``width`` sets the first convolution's channels (the second has twice as many); 32 is the port.
    ``decoder_widths`` are the two transposed convolutions' channels; (64, 32) is the port."""

    def __init__(self, image_size: int, latent_dim: int = 16, width: int = 32,
                 decoder_widths: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        grid = image_size // 4
        self.grid = grid
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(width),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(2 * width),
            nn.Flatten(), nn.Linear(2 * width * grid * grid, latent_dim),
        )
        a, b = decoder_widths
        self.decoder_head = nn.Linear(latent_dim, a * grid * grid)
        self.decoder_body = nn.Sequential(
            nn.ConvTranspose2d(a, a, 3, stride=2, padding=1, output_padding=1), nn.ReLU(), nn.BatchNorm2d(a),
            nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), nn.ReLU(), nn.BatchNorm2d(b),
            nn.Conv2d(b, 3, 3, padding=1), nn.Sigmoid(),
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_head(z).view(z.shape[0], -1, self.grid, self.grid)
        return self.decoder_body(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decode(z), z


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvAutoencoder(nn.Module):
    """Four stride-2 conv stages (32-64-128-256 by default, BN+ReLU), global average pooling, linear latent."""

    def __init__(self, image_size: int, latent_dim: int = 128, widths: tuple[int, ...] = (32, 64, 128, 256),
                 decoder_widths: tuple[int, ...] = (128, 128, 64, 32, 32)) -> None:
        super().__init__()
        self.grid = image_size // 2 ** len(widths)
        stages, cin = [], 3
        for w in widths:
            stages.append(_stage(cin, w, 2))
            cin = w
        self.encoder = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, latent_dim))
        self.decoder_head = nn.Linear(latent_dim, 256)
        dec_widths = decoder_widths
        layers = [_stage(256 + 2, dec_widths[0], 1)]
        for a, b in zip(dec_widths[:-1], dec_widths[1:], strict=True):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _stage(a, b, 1)]
        layers += [nn.Conv2d(dec_widths[-1], 3, 3, padding=1), nn.Sigmoid()]
        self.decoder_body = nn.Sequential(*layers)
        coords = torch.linspace(-1.0, 1.0, self.grid)
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        self.register_buffer("coords", torch.stack([yy, xx])[None], persistent=False)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_head(z)[:, :, None, None].expand(-1, -1, self.grid, self.grid)
        coords = self.coords.to(h.dtype).expand(h.shape[0], -1, -1, -1)
        return self.decoder_body(torch.cat([h, coords], dim=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decode(z), z


def build_autoencoder(config: TrainConfig) -> nn.Module:
    """The autoencoder named by ``config.arch`` (config must be :meth:`~TrainConfig.resolved`)."""
    if config.arch == "seed":
        model = SeedAutoencoder(config.image_size, config.latent_dim, width=config.width,
                                decoder_widths=SEED_DECODERS[config.decoder])
    else:
        widths = tuple(config.width * 2**i for i in range(4))
        model = ConvAutoencoder(config.image_size, config.latent_dim, widths=widths,
                                decoder_widths=DECODERS[config.decoder])
    if config.projector:
        # A small head used only by the agreement term; the embedding (and the export) is its input.
        model.projector = nn.Sequential(nn.Linear(config.latent_dim, 256), nn.ReLU(inplace=True), nn.Linear(256, 128))
    if config.map_dim:
        # Fitted after the epochs by imgret.train.maphead; exported beside the code.
        in_features = map_size(model.encoder, config.image_size)
        if in_features > MAX_MAP_FEATURES:
            raise TrainingError(f"--map-dim needs a feature map of at most {MAX_MAP_FEATURES} values; this "
                                f"encoder's has {in_features} (use a smaller --image-size or --width)")
        model.map_head = MapHead(in_features, config.map_dim)
    if config.graph_dim:
        # Fitted after the epochs by imgret.train.graph; exported beside the code.
        model.graph_head = GraphHead(config.latent_dim, config.graph_dim)
    return model


def map_size(encoder: nn.Sequential, image_size: int) -> int:
    """Values in the encoder's last feature map for one picture."""
    trunk = encoder[: split_index(encoder)]
    was_training = trunk.training
    trunk.eval()
    with torch.no_grad():
        size = trunk(torch.zeros(1, 3, image_size, image_size)).numel()
    trunk.train(was_training)
    return size


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC RGB batch → float32 NCHW in ``[0, 1]`` (the normalisation recorded in the metadata).

    The one place the input is scaled: training calls it on each batch and the exported graph
    (:class:`EmbeddingModel`) on its input, so the two cannot drift apart."""
    return images.permute(0, 3, 1, 2).to(torch.float32) / 255.0


class EmbeddingModel(nn.Module):
    """The exported graph: uint8 NHWC RGB ``[N, S, S, 3]`` → float32 ``[N, D]`` embedding.

    Casting, scaling to ``[0, 1]`` and the NCHW transpose happen inside; with ``flip_tta`` the
    codes of the picture and its horizontal mirror are averaged (and, for a map head, their feature
    maps, the mirror's flipped back). With fitted heads the output is the unit code, then
    ``map_weight`` times the unit map-head output (its axes whitened by ``map_whiten``), then
    ``graph_weight`` times the unit graph-head output, side by side; with ``l2_normalise`` each
    vector is divided by its norm, so the metric is cosine.
    """

    def __init__(  # noqa: PLR0913 - each head and its weight mirror imgret export's --map-weight etc.
        self, encoder: nn.Sequential, *, flip_tta: bool = False, l2_normalise: bool = True,
        graph_head: nn.Module | None = None, graph_weight: float = 1.0,
        map_head: nn.Module | None = None, map_weight: float = 1.0, map_whiten: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.flip_tta = flip_tta
        self.l2_normalise = l2_normalise
        self.graph_head = graph_head
        self.graph_weight = float(graph_weight)
        self.map_head = map_head
        self.map_weight = float(map_weight)
        self.map_whiten = float(map_whiten)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = to_model_input(image)
        z, fmap = encode(self.encoder, x, flip_tta=self.flip_tta, with_map=self.map_head is not None)
        if self.map_head is not None or self.graph_head is not None:
            code = _unit(z)
            parts = [code]
            if self.map_head is not None:
                parts.append(self.map_weight * _unit(self.map_head(fmap, self.map_whiten)))
            if self.graph_head is not None:
                parts.append(self.graph_weight * _unit(self.graph_head(code)))
            z = torch.cat(parts, dim=1)
        if self.l2_normalise:
            z = _unit(z)
        return z


def encode(encoder: nn.Sequential, x: torch.Tensor, *, flip_tta: bool,
           with_map: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The code of float NCHW pictures and, ``with_map``, the encoder's last feature map. With
    ``flip_tta`` each is averaged with the mirror image's (the mirror's map flipped back into place),
    as the exported graph does; the heads are fitted on these same values."""
    split = split_index(encoder)
    trunk, tail = encoder[:split], encoder[split:]
    fmap = trunk(x)
    z = tail(fmap)
    if flip_tta:
        mirror = trunk(torch.flip(x, dims=[3]))
        z = (z + tail(mirror)) * 0.5
        fmap = (fmap + torch.flip(mirror, dims=[3])) * 0.5 if with_map else fmap
    return z, fmap if with_map else None


def _unit(z: torch.Tensor) -> torch.Tensor:
    """Rows divided by their norm, in ops every ONNX runtime has."""
    return z / torch.sqrt(torch.clamp((z * z).sum(dim=1, keepdim=True), min=1e-12))
