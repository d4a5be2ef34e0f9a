"""Using a saved model: loading it safely, its probabilities, evaluation, predictions and ONNX export."""
