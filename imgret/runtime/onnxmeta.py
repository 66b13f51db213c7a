"""An ONNX model's ``metadata_props`` read straight from its bytes, without onnxruntime or onnx.

A library's own model passed every check (load, signature, probe) when the library recorded its
fingerprint. Opening it again for a query needs only its metadata (input size, metric, copy
threshold); an onnxruntime session costs a tenth of a cold ``imgret query`` and is opened only when
a picture must be embedded. ``metadata_props`` is field 14 of the ``ModelProto`` message, a list of
``{key: 1, value: 2}`` string pairs; every other field is skipped by its length.
"""

from __future__ import annotations

import os

METADATA_PROPS = 14
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class NotOnnx(ValueError):
    """The bytes are not a protobuf message this reader can walk."""


def metadata_props(data: bytes) -> dict[str, str]:
    """The ``metadata_props`` of a serialised ONNX ``ModelProto`` (a later duplicate key wins, as
    onnxruntime's map does). Raises :class:`NotOnnx` for bytes that are not a protobuf message."""
    props: dict[str, str] = {}
    for field, value in _fields(memoryview(data)):
        if field == METADATA_PROPS:
            entry = dict(_fields(value))
            props[_text(entry.get(1, b""))] = _text(entry.get(2, b""))
    return props


def file_metadata_props(path: str | os.PathLike) -> dict[str, str]:
    """:func:`metadata_props` of a model file, reading only its metadata entries: every other
    top-level field (the graph and its weights) is skipped with a seek, so a large model is not read."""
    props: dict[str, str] = {}
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        while fh.tell() < size:
            tag = _file_varint(fh)
            field, wire = tag >> 3, tag & 7
            if wire == _VARINT:
                _file_varint(fh)
                continue
            if wire in (_FIXED64, _FIXED32):
                fh.seek(8 if wire == _FIXED64 else 4, os.SEEK_CUR)
                continue
            if wire != _LENGTH or field == 0:
                raise NotOnnx(f"unsupported protobuf wire type {wire}")
            length = _file_varint(fh)
            if fh.tell() + length > size:
                raise NotOnnx("a field runs past the end of the file")
            if field != METADATA_PROPS:
                fh.seek(length, os.SEEK_CUR)
                continue
            entry = dict(_fields(memoryview(fh.read(length))))
            props[_text(entry.get(1, b""))] = _text(entry.get(2, b""))
    return props


def _file_varint(fh) -> int:
    value = shift = 0
    while True:
        byte = fh.read(1)
        if not byte or shift > 63:
            raise NotOnnx("truncated or overlong varint")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7


def _fields(buf: memoryview):
    """``(field number, value)`` for each field of one message: bytes for length-delimited ones,
    ints for the rest."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LENGTH:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise NotOnnx("a field runs past the end of the message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (_FIXED64, _FIXED32):
            step = 8 if wire == _FIXED64 else 4
            value, pos = int.from_bytes(buf[pos:pos + step], "little"), pos + step
        else:
            raise NotOnnx(f"unsupported protobuf wire type {wire}")
        if field == 0 or pos > end:
            raise NotOnnx("not a protobuf message")
        yield field, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise NotOnnx("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _text(value) -> str:
    if isinstance(value, int):
        raise NotOnnx("a metadata entry holds a number where text belongs")
    return bytes(value).decode("utf-8", errors="replace")
