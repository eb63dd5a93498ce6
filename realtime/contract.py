"""The ONNX contract between export/ (which writes graphs) and realtime/ (which runs them).

Written down once, here; the README repeats it for people.

Contract version 1
------------------
Inputs
  ``frame``    uint8   [1, H, W, 3]  BGR, 0..255, any H and W >= 16 (odd sizes included)
  ``style``    float32 [1, S]        the style vector; S is fixed in each graph
                                     (float32 in the fp16 graph too: it is cast inside)
Output
  ``stylized`` uint8   [1, H, W, 3]  BGR, exactly the input's H and W

Everything the network needs around itself (scaling to [0, 1], BGR<->RGB, padding to
its stride and cropping back, rounding to uint8) happens inside the graph. Other
per-pixel stages (temporal blend, strength, colour preservation) belong to the runtime.

Every graph carries ``metadata_props`` with the keys below; later contract versions may
add optional inputs or outputs, and the runtime keeps accepting version 1.

Model folder (written by ``nst-export``, read by the runtime)
  manifest.json      MANIFEST_FORMAT, contract version, styles in order, S, graphs,
                     provenance, and every file's sha256 and size
  model.onnx         the fp32 graph
  model.fp16.onnx    the fp16 graph (optional)
  model.int8.onnx    the int8 graph (optional): the fp32 graph with its convolutions
                     quantised (same inputs and outputs); the CPU runs it when present
  styles.npz         ``names`` (unicode [N]) and ``vectors`` (float32 [N, S]);
                     loadable with ``allow_pickle=False``
  predictor.onnx     optional: the style-prediction graph below; listed in manifest.json
                     under ``predictor`` and hashed like every other file

Style-prediction graph (optional, same contract version)
  Input   ``style_image`` uint8   [1, H, W, 3]  BGR, 0..255, any H and W >= 64
  Output  ``style``       float32 [1, S]        a style vector for this folder's network
                                                (S equal to the manifest's style_dim)
It turns any picture (a painting, a texture) into a style vector in one pass (Ghiasi et
al. 2017, with VGG feature statistics in place of Inception). The graph holds its own
truncated VGG, so it needs nothing else. Its metadata_props carry the keys above plus
``stylecast.predictor.side``: the shorter side, in px, the network learned at; the runtime
scales every image to it before the graph sees it (the graph itself takes any size).
"""

from __future__ import annotations

CONTRACT_VERSION = 1
SUPPORTED_CONTRACT_VERSIONS = (1,)

INPUT_FRAME = "frame"
INPUT_STYLE = "style"
OUTPUT_STYLIZED = "stylized"

MIN_SIDE = 16
"""Smallest height or width a graph accepts."""

# metadata_props keys inside every exported graph
META_CONTRACT = "stylecast.contract_version"
META_STYLE_DIM = "stylecast.style_dim"
META_PRECISION = "stylecast.precision"
META_ARCHITECTURE = "stylecast.architecture"
META_PROVENANCE = "stylecast.provenance"

# model folder
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "stylecast-model"
GRAPH_FP32 = "model.onnx"
GRAPH_FP16 = "model.fp16.onnx"
GRAPH_INT8 = "model.int8.onnx"
PRECISIONS = ("fp32", "fp16", "int8")
"""The graph precisions a manifest may list; fp32 is always there."""
STYLES_NAME = "styles.npz"
PREDICTOR_GRAPH = "predictor.onnx"
NETWORK_WEIGHTS = "network.safetensors"
"""Optional: the PyTorch weights of the network (``net.<name>`` tensors), so training can warm
start from a model folder (``nst-train --from``). The runtime never reads it; the manifest's
``network`` entry names the file, the architecture and its config."""

# style-prediction graph
INPUT_STYLE_IMAGE = "style_image"
OUTPUT_STYLE = "style"
PREDICTOR_MIN_SIDE = 64
"""Smallest height or width of a style image (the graph's feature pyramid needs it)."""
META_PREDICTOR_SIDE = "stylecast.predictor.side"

MAX_GRAPH_BYTES = 512 * 1024 * 1024
"""Upper bound on one graph file; a style network is a few MB."""
