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

from imgret.train.config import TrainConfig
from imgret.train.graph import GraphHead

# The decoder only serves training (export keeps the encoder); "light" costs about a quarter of "full"
# and is what CPU-trained recipes use.
DECODERS = {"full": (128, 128, 64, 32, 32), "light": (128, 64, 32, 16, 16)}


class SeedAutoencoder(nn.Module):
    """Port of the original Keras autoencoder: Conv(32)/Conv(64) stride 2, ReLU then BatchNorm."""

    def __init__(self, image_size: int, latent_dim: int = 16) -> None:
        super().__init__()
        grid = image_size // 4
        self.grid = grid
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
            nn.Flatten(), nn.Linear(64 * grid * grid, latent_dim),
        )
        self.decoder_head = nn.Linear(latent_dim, 64 * grid * grid)
        self.decoder_body = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(), nn.BatchNorm2d(64),
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 3, 3, padding=1), nn.Sigmoid(),
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_head(z).view(-1, 64, self.grid, self.grid)
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
        model = SeedAutoencoder(config.image_size, config.latent_dim)
    else:
        widths = tuple(config.width * 2**i for i in range(4))
        model = ConvAutoencoder(config.image_size, config.latent_dim, widths=widths,
                                decoder_widths=DECODERS[config.decoder])
    if config.projector:
        # A small head used only by the agreement term; the embedding (and the export) is its input.
        model.projector = nn.Sequential(nn.Linear(config.latent_dim, 256), nn.ReLU(inplace=True), nn.Linear(256, 128))
    if config.graph_dim:
        # Fitted after the epochs by imgret.train.graph; exported beside the code.
        model.graph_head = GraphHead(config.latent_dim, config.graph_dim)
    return model


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC RGB batch → float NCHW in ``[0, 1]`` (the normalisation recorded in the metadata)."""
    return images.permute(0, 3, 1, 2).float().div(255.0)


class EmbeddingModel(nn.Module):
    """The exported graph: uint8 NHWC RGB ``[N, S, S, 3]`` → float32 ``[N, D]`` embedding.

    Casting, scaling to ``[0, 1]`` and the NCHW transpose happen inside; with ``flip_tta`` the
    codes of the picture and its horizontal mirror are averaged; with a fitted ``graph_head`` the
    output is the unit code and ``graph_weight`` times the unit head output side by side; with
    ``l2_normalise`` each vector is divided by its norm, so the metric is cosine.
    """

    def __init__(self, encoder: nn.Module, *, flip_tta: bool = False, l2_normalise: bool = True,
                 graph_head: nn.Module | None = None, graph_weight: float = 1.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.flip_tta = flip_tta
        self.l2_normalise = l2_normalise
        self.graph_head = graph_head
        self.graph_weight = float(graph_weight)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        z = self.encoder(x)
        if self.flip_tta:
            z = (z + self.encoder(torch.flip(x, dims=[3]))) * 0.5
        if self.graph_head is not None:
            z = _unit(z)
            z = torch.cat([z, self.graph_weight * _unit(self.graph_head(z))], dim=1)
        if self.l2_normalise:
            z = _unit(z)
        return z


def _unit(z: torch.Tensor) -> torch.Tensor:
    """Rows divided by their norm, in ops every ONNX runtime has."""
    return z / torch.sqrt(torch.clamp((z * z).sum(dim=1, keepdim=True), min=1e-12))
