"""Helpers that build ONNX test models for the importer's conformance tests."""
