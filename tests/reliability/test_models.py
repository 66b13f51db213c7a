"""Models: only sane .onnx encoders are loaded, and a refused model never touches the library.

Each bad model is a small real ONNX graph built here (with the ``onnx`` package; the runtime itself
never imports it). onnxruntime refuses external data outside the model's folder on its own (tested
below, so an onnxruntime that stopped doing so would be noticed); imgret checks the rest.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import onnx  # noqa: TID251 - tests build models; the runtime never imports onnx
import pytest
from fakes import write_scenes
from onnx import TensorProto, helper, numpy_helper  # noqa: TID251

from imgret.errors import ModelError
from imgret.runtime.encoder import Encoder
from imgret.runtime.modelinfo import ModelInfo

SIZE, GRID = 32, 4
DIM = 3 * GRID * GRID


def make_model(path, *, input_type=TensorProto.UINT8, nchw=False, output_type=TensorProto.FLOAT, meta_dim=DIM,
               tail="normal", custom_domain=None, external=None, metadata=True, input_name="image", rank4_out=False):
    """A thumbnail encoder like ``fakes.make_thumbnail_model`` with one thing wrong (or nothing)."""
    k = SIZE // GRID
    nodes = []
    x = "image"
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [input_name], ["f"], to=TensorProto.FLOAT))
        x = "f"
    else:
        x = input_name
    nodes.append(helper.make_node("Sub", [x, "centre"], ["c"]))
    if nchw:
        nodes.append(helper.make_node("Identity", ["c"], ["nchw"]))
    else:
        nodes.append(helper.make_node("Transpose", ["c"], ["nchw"], perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[k, k], strides=[k, k]))
    last = "pooled"
    if not rank4_out:
        nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
        last = "flat"
    nodes += _tail(last, tail)
    last = "t"
    if custom_domain:
        nodes.append(helper.make_node("MysteryScale", [last], ["u"], domain=custom_domain))
        last = "u"
    if output_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [last], ["embedding"], to=output_type))
    else:
        nodes.append(helper.make_node("Identity", [last], ["embedding"]))
    in_shape = ["batch", 3, SIZE, SIZE] if nchw else ["batch", SIZE, SIZE, 3]
    out_shape = ["batch", 3, GRID, GRID] if rank4_out else ["batch", DIM]
    inits = [numpy_helper.from_array(np.full((1,), 127.5, dtype=np.float32), "centre"),
             numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
             numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")]
    graph = helper.make_graph(nodes, "thumb", [helper.make_tensor_value_info(input_name, input_type, in_shape)],
                              [helper.make_tensor_value_info("embedding", output_type, out_shape)], initializer=inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(custom_domain, 1)] if custom_domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    if metadata:
        info = ModelInfo(model_id="bad", input_size=SIZE, embedding_dim=meta_dim, arch="thumbnail")
        for key, value in info.to_metadata().items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    if external is not None:
        _move_first_initializer_out(model, path, external)
    onnx.save(model, str(path))
    return path


def _tail(last: str, tail: str) -> list:
    """The nodes that make the output ``t``: normalised, or zero, NaN or infinite on purpose."""
    if tail == "zero":
        return [helper.make_node("Mul", [last, "zero"], ["t"])]
    if tail == "nan":
        return [helper.make_node("Sub", [last, last], ["z"]), helper.make_node("Div", ["z", "zero"], ["t"])]
    if tail == "inf":
        return [helper.make_node("Abs", [last], ["a"]), helper.make_node("Add", ["a", "one"], ["a1"]),
                helper.make_node("Div", ["a1", "zero"], ["t"])]
    return [helper.make_node("LpNormalization", [last], ["t"], axis=1, p=2)]


def _move_first_initializer_out(model, path, external: str) -> None:
    """Store the first initializer in the external data file ``external`` (relative to ``path``)."""
    init = model.graph.initializer[0]
    raw = numpy_helper.to_array(init).tobytes()
    target = os.path.normpath(os.path.join(os.path.dirname(path), external))
    with open(target, "wb") as fh:
        fh.write(raw)
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    for key, value in (("location", external), ("offset", "0"), ("length", str(len(raw)))):
        entry = init.external_data.add()
        entry.key, entry.value = key, value


def test_the_builder_makes_a_good_model_when_nothing_is_wrong(tmp_path):
    enc = Encoder(make_model(tmp_path / "good.onnx"))
    assert enc.embed([np.zeros((5, 7, 3), np.uint8)]).shape == (1, DIM)
    (tmp_path / "m").mkdir()
    inside = Encoder(make_model(tmp_path / "m" / "inside.onnx", external="weights.bin"))
    assert inside.dim == DIM  # external data beside the model is fine


BAD_MODELS = {
    "external data above its folder": (dict(external="../outside.bin"), "cannot load"),
    "external data at an absolute path": (dict(external="{tmp}/abs.bin"), "cannot load"),
    "a custom operator domain": (dict(custom_domain="com.example.custom"), "cannot load"),
    "NCHW input": (dict(nchw=True, input_type=TensorProto.UINT8), "input shape"),
    "float input": (dict(input_type=TensorProto.FLOAT), "input must be uint8"),
    "another input name": (dict(input_name="pixels"), "expected one input named"),
    "embedding size unlike its metadata": (dict(meta_dim=DIM + 1), "output shape"),
    "4-d output": (dict(rank4_out=True), "output shape"),
    "float64 output": (dict(output_type=TensorProto.DOUBLE), "output must be float32"),
    "float16 output": (dict(output_type=TensorProto.FLOAT16), "output must be float32"),
    "int output": (dict(output_type=TensorProto.INT32), "output must be float32"),
    "NaN output": (dict(tail="nan"), "non-finite or zero"),
    "infinite output": (dict(tail="inf"), "non-finite or zero"),
    "zero output": (dict(tail="zero"), "non-finite or zero"),
    "no imgret metadata": (dict(metadata=False), "not an imgret encoder"),
}


@pytest.mark.parametrize("what", list(BAD_MODELS))
def test_bad_models_are_refused_with_model_error(tmp_path, what):
    kwargs, message = BAD_MODELS[what]
    if isinstance(kwargs.get("external"), str):
        kwargs = dict(kwargs, external=kwargs["external"].format(tmp=tmp_path))
    folder = tmp_path / "models"
    folder.mkdir()
    path = make_model(folder / "bad.onnx", **kwargs)
    with pytest.raises(ModelError, match=message):
        Encoder(path)


@pytest.mark.parametrize("name", ["model.pt", "model.onnx.bak", "model.pkl", "model"])
def test_only_onnx_files_are_loaded(tmp_path, name):
    path = tmp_path / name
    make_model(tmp_path / "real.onnx")
    path.write_bytes((tmp_path / "real.onnx").read_bytes())
    with pytest.raises(ModelError, match="only .onnx"):
        Encoder(path)


def _fingerprint(folder):
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("what", ["NaN output", "a custom operator domain", "external data above its folder"])
def test_a_refused_model_never_touches_the_library(imgret, tmp_path, fake_model, what):
    photos, lib, fresh = tmp_path / "photos", tmp_path / "lib", tmp_path / "fresh"
    write_scenes(photos, 4)
    assert imgret("index", photos, "--library", lib, "--model", fake_model).code == 0
    before = _fingerprint(lib)
    (tmp_path / "models").mkdir()
    bad = make_model(tmp_path / "models" / "bad.onnx", **BAD_MODELS[what][0])
    for args in (["index", photos, "--library", lib, "--model", bad, "--rebuild"],
                 ["index", photos, "--library", fresh, "--model", bad],
                 ["query", photos / "scene000.png", "--library", lib, "--model", bad]):
        r = imgret(*args)
        assert r.code == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert _fingerprint(lib) == before
    assert not fresh.exists()
