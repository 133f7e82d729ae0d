"""Models: the ConvLSTM and the sequence-to-sequence VOS network."""

from .convlstm import ConvLSTM, ConvLSTMCell
from .s2s import CONFIGS, S2S, ModelConfig, build_model, load_vgg16_weights, vgg_features

__all__ = [
    "CONFIGS",
    "S2S",
    "ConvLSTM",
    "ConvLSTMCell",
    "ModelConfig",
    "build_model",
    "load_vgg16_weights",
    "vgg_features",
]
