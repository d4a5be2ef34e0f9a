"""Checks on what comes from outside before anything uses it: size limits, bounded file reads,
archives, saved models, ONNX files, pictures, and text made safe to print."""
