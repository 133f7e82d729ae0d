"""Models: the ConvLSTM, the paper's S2S network, ``tiny``'s tracking extension and the
pretrained VGG16 they can start from."""

from .build import build_model, load_vgg16_weights
from .config import CONFIGS, ModelConfig
from .convlstm import ConvLSTM, ConvLSTMCell
from .pretrained import pretrained_vgg16
from .s2s import S2S, vgg_features
from .tracking import TrackingS2S

__all__ = [
    "CONFIGS",
    "S2S",
    "ConvLSTM",
    "ConvLSTMCell",
    "ModelConfig",
    "TrackingS2S",
    "build_model",
    "load_vgg16_weights",
    "pretrained_vgg16",
    "vgg_features",
]
