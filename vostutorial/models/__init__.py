"""Models: the ConvLSTM, the paper's S2S network and ``tiny``'s tracking extension."""

from .build import build_model, load_vgg16_weights
from .config import CONFIGS, ModelConfig
from .convlstm import ConvLSTM, ConvLSTMCell
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
    "vgg_features",
]
