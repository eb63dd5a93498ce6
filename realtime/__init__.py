"""stylecast.realtime: run exported style-transfer graphs with ONNX Runtime (no PyTorch needed)."""
