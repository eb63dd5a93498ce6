"""stylecast.export: the PyTorch side (networks, VGG losses, Gatys, training, ONNX export)."""
