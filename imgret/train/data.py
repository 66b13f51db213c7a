"""Training data: which files, how they are split, and a uint8 cache of the decoded pictures.

Files come from :func:`imgret.runtime.scan.image_files`; when ``DATA/train`` exists the original
layout is honoured (``DATA/train`` to learn from, ``DATA/val`` to validate on when present),
otherwise a seeded split holds out ``val_split`` of the files. Class subfolders are ignored.
Every picture goes through :func:`imgret.runtime.imageio.load` once, into a ``.npy`` file in the run
folder (read back memory-mapped with ``allow_pickle=False``) whose name is a hash of the file list,
sizes, modification times and image size, so later epochs and later runs never decode again.
Unreadable pictures are skipped and counted by reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from imgret.errors import ImageError, TrainingError
from imgret.runtime.atomic import replacing, write_text
from imgret.runtime.imageio import load
from imgret.runtime.progress import ProgressCallback
from imgret.runtime.scan import image_files
from imgret.train.config import TrainConfig, size_for

CACHE_VERSION = 1


@dataclass(frozen=True)
class SplitPaths:
    """Training and validation file lists and where they came from (``layout``: folders or split)."""

    train: list[str]
    val: list[str]
    layout: str


def split_paths(config: TrainConfig) -> SplitPaths:
    """Decide which files train and which validate; deterministic for a given config and folder."""
    root = config.data
    if not os.path.isdir(root):
        raise TrainingError(f"data folder {root} does not exist")
    train_dir, val_dir = os.path.join(root, "train"), os.path.join(root, "val")
    if os.path.isdir(train_dir):
        train = _cap(image_files(train_dir), config.max_images, config.seed)
        if os.path.isdir(val_dir):
            return SplitPaths(train, _cap(image_files(val_dir), config.max_images, config.seed), "train/val folders")
        pool, layout = train, "train folder, seeded split"
    else:
        pool, layout = _cap(image_files(root), config.max_images, config.seed), "seeded split"
    n_val = int(round(len(pool) * config.val_split))
    if config.val_split > 0 and len(pool) >= 2:
        n_val = min(max(n_val, 1), len(pool) - 1)
    order = np.random.default_rng(config.seed).permutation(len(pool))
    val_idx = set(order[:n_val].tolist())
    train = [p for i, p in enumerate(pool) if i not in val_idx]
    val = [p for i, p in enumerate(pool) if i in val_idx]
    return SplitPaths(train, val, layout)


def typical_size(paths: list[str], *, sample: int = 256, seed: int = 0) -> int:
    """The median longer side of up to ``sample`` of ``paths`` (read from their headers only, so it
    is quick on any folder); 0 when none can be read."""
    from PIL import Image, UnidentifiedImageError

    picked = _cap(paths, sample, seed)
    sides = []
    for path in picked:
        try:
            with Image.open(path) as img:
                sides.append(max(img.size))
        except (OSError, UnidentifiedImageError, ValueError):
            continue  # decoding later counts and reports it
    return int(np.median(sides)) if sides else 0


def sized_to_pictures(config: TrainConfig) -> TrainConfig:
    """With no image size given (0): the default size, or for smaller pictures the smallest allowed size
    at or above their median size (28 px pictures are not trained at 128 px, 20 times the cost); the
    median is kept as ``typical_size``. A config with a size is returned as it is."""
    if config.image_size:
        return config
    typical = typical_size(split_paths(config).train, seed=config.seed)
    return replace(config, image_size=size_for(typical, config.arch), typical_size=typical)


def _cap(paths: list[str], limit: int, seed: int) -> list[str]:
    if not limit or len(paths) <= limit:
        return paths
    keep = np.sort(np.random.default_rng(seed).choice(len(paths), size=limit, replace=False))
    return [paths[i] for i in keep]


@dataclass
class ImageCache:
    """Decoded pictures as uint8 ``[N, S, S, 3]`` in a ``.npy`` file; ``ok[i]`` is false for skipped ones."""

    npy_path: str
    paths: list[str]
    ok: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_paths: list[tuple[str, str]] = field(default_factory=list)

    def indices(self, paths: list[str]) -> np.ndarray:
        """Row numbers of the usable pictures among ``paths`` (in their order)."""
        row = {p: i for i, p in enumerate(self.paths)}
        return np.array([row[p] for p in paths if self.ok[row[p]]], dtype=np.int64)

    def array(self) -> np.ndarray:
        """The cache memory-mapped read-only."""
        return np.load(self.npy_path, mmap_mode="r", allow_pickle=False)


def cache_key(paths: list[str], image_size: int) -> str:
    """Hash of (file list, sizes, mtimes, image size, cache version)."""
    h = hashlib.sha256(f"v{CACHE_VERSION} size={image_size}\n".encode())
    for p in paths:
        try:
            st = os.stat(p)
            stamp = f"{st.st_size} {st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{p}\0{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:20]


def build_cache(paths: list[str], image_size: int, cache_dir: str, *, threads: int = 1,
                progress: ProgressCallback | None = None) -> ImageCache:
    """Decode ``paths`` once into ``cache_dir`` (or reuse a matching cache). ``progress(done, total)``."""
    os.makedirs(cache_dir, exist_ok=True)
    key = cache_key(paths, image_size)
    npy_path = os.path.join(cache_dir, f"images-{key}.npy")
    meta_path = os.path.join(cache_dir, f"images-{key}.json")
    if os.path.isfile(npy_path) and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get("paths") == paths:
            skipped_paths = [tuple(x) for x in meta["skipped_paths"]]
            return ImageCache(npy_path, paths, np.array(meta["ok"], dtype=bool),
                              dict(Counter(r for _, r in skipped_paths)), skipped_paths)
    with replacing(npy_path) as fh:
        ok, skipped_paths = _decode_into(fh, paths, image_size, threads, progress)
    write_text(meta_path, json.dumps({"paths": paths, "ok": ok.tolist(), "skipped_paths": skipped_paths,
                                      "image_size": image_size}))
    return ImageCache(npy_path, paths, ok, dict(Counter(r for _, r in skipped_paths)), skipped_paths)


def _decode_into(fh, paths: list[str], image_size: int, threads: int,
                 progress: ProgressCallback | None) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Write a uint8 ``[N, S, S, 3]`` ``.npy`` of ``paths`` to ``fh`` row by row (zeros for pictures
    that cannot be read); return which rows are usable and why the others were skipped."""
    shape = (len(paths), image_size, image_size, 3)
    np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                              "fortran_order": False, "shape": shape})
    blank = bytes(image_size * image_size * 3)
    ok = np.zeros(len(paths), dtype=bool)
    skipped_paths: list[tuple[str, str]] = []

    def decode(i: int) -> tuple[np.ndarray | None, str | None]:
        try:
            return np.ascontiguousarray(load(paths[i], image_size), dtype=np.uint8), None
        except ImageError as exc:
            return None, exc.reason

    # Pillow releases the GIL while decoding and resizing, so threads are enough (and fork-free);
    # map keeps the file order, so rows are written in place as they come.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for i, (pixels, reason) in enumerate(pool.map(decode, range(len(paths)))):
            fh.write(blank if pixels is None else pixels.tobytes())
            if reason is None:
                ok[i] = True
            else:
                skipped_paths.append((paths[i], reason))
            if progress is not None:
                progress(i + 1, len(paths))
    return ok, skipped_paths


@dataclass(frozen=True)
class RunPictures:
    """A run's training and validation pictures, decoded, and what was skipped."""

    train: CachedImages
    val: CachedImages
    skipped: dict[str, int]
    layout: str

    def all(self) -> list[CachedImages]:
        """Training then validation pictures (what the heads are fitted on)."""
        return [self.train, self.val]


def load_pictures(config: TrainConfig, run_dir: str, progress: ProgressCallback | None = None) -> RunPictures:
    """Split ``config.data`` and decode it into ``run_dir``'s cache (reused when nothing changed).
    Raises :class:`TrainingError` when there is no picture, or no readable training picture."""
    split = split_paths(config)
    all_paths = list(dict.fromkeys(split.train + split.val))
    if not all_paths:
        raise TrainingError(f"no pictures found in {config.data}")
    cache = build_cache(all_paths, config.image_size, os.path.join(run_dir, "cache"),
                        threads=max(1, config.workers), progress=progress)
    pictures = RunPictures(CachedImages(cache.npy_path, cache.indices(split.train)),
                           CachedImages(cache.npy_path, cache.indices(split.val)), dict(cache.skipped), split.layout)
    if len(pictures.train) == 0:
        raise TrainingError(f"no readable training pictures in {config.data}")
    return pictures


class CachedImages(torch.utils.data.Dataset):
    """Rows of an :class:`ImageCache` as uint8 ``[S, S, 3]`` tensors; opens the memmap lazily per worker."""

    def __init__(self, npy_path: str, indices: np.ndarray) -> None:
        self.npy_path = npy_path
        self.indices = np.asarray(indices, dtype=np.int64)
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._array is None:
            self._array = np.load(self.npy_path, mmap_mode="r", allow_pickle=False)
        return torch.from_numpy(np.array(self._array[self.indices[i]]))

    def batch(self, count: int) -> torch.Tensor:
        """The first ``count`` rows as one uint8 batch (for pictures and checks)."""
        return torch.stack([self[i] for i in range(min(count, len(self)))]) if len(self) else torch.empty(0)
