"""Test doubles: tiny generated pictures and a small, deterministic ONNX encoder.

The fake encoder is a real ONNX graph honouring imgret's model contract (uint8 NHWC input named
``image``, L2-normalised ``embedding`` output, ``imgret.*`` metadata): it averages the picture into a
``grid`` x ``grid`` colour thumbnail. Close pictures get close vectors, which is all the runtime tests need.
Building it needs the ``onnx`` package (part of the ``train`` extra that the test setup installs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imgret.runtime.modelinfo import ModelInfo


def make_thumbnail_model(path: Path, *, size: int = 32, grid: int = 4, model_id: str = "fake-thumb",
                         nan: bool = False, dup_threshold: float | None = None, metric: str = "cosine") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = size // grid
    dim = 3 * grid * grid
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["f", "centre"], ["c"]),
        helper.make_node("Transpose", ["c"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[k, k], strides=[k, k]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
    ]
    if nan:
        nodes.append(helper.make_node("Div", ["flat", "zero"], ["flat2"]))
        nodes.append(helper.make_node("Mul", ["flat2", "zero"], ["flat3"]))
        last = "flat3"
    else:
        last = "flat"
    nodes.append(helper.make_node("LpNormalization", [last], ["embedding"], axis=1, p=2))
    inits = [numpy_helper.from_array(np.array(127.5, dtype=np.float32), "centre"),
             numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    graph = helper.make_graph(
        nodes, "thumb",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(model_id=model_id, input_size=size, embedding_dim=dim, metric=metric,
                     l2_normalised=True, arch="thumbnail", dup_threshold=dup_threshold)
    for key, value in info.to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def scene(seed: int, size: int = 48) -> Image.Image:
    """A distinct, deterministic picture: coloured blocks on a gradient."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    img = Image.fromarray(base, "RGB").resize((size, size), Image.Resampling.NEAREST)
    return img


def write_scenes(folder: Path, count: int, *, start: int = 0, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        p = folder / f"scene{i:03d}{suffix}"
        scene(i).save(p)
        paths.append(p)
    return paths


def indexed_scenes(tmp_path: Path, model: Path, count: int) -> tuple[Path, Path]:
    """``count`` scenes in ``tmp_path/p`` indexed into a new library ``tmp_path/lib`` with ``model``;
    returns (library folder, picture folder)."""
    from imgret.runtime.library import Library

    photos = tmp_path / "p"
    write_scenes(photos, count)
    with Library.open_writable(tmp_path / "lib", model=model) as lib:
        lib.index(photos, workers=0)
    return tmp_path / "lib", photos
