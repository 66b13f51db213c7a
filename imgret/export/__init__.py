"""PyTorch → ONNX: the encoder only, with its metadata, a parity check and optional static int8.

Entry point: :func:`imgret.export.onnx_export.export_encoder`.
"""

from imgret.export.onnx_export import ExportResult, export_encoder

__all__ = ["ExportResult", "export_encoder"]
