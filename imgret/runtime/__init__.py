"""Torch-free inference: decode, preprocess, encode with onnxruntime, index with usearch, search."""
