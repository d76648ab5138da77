"""Shared networks: standardization, parameter-support transforms, embedding nets (MLP, DeepSets)."""

from sbi_gen.nn.deepsets import DeepSetsEmbedding
from sbi_gen.nn.embedding import MLPEmbedding
from sbi_gen.nn.loading import loading_weights, weights_will_be_loaded
from sbi_gen.nn.standardize import Standardize
from sbi_gen.nn.support import ParameterTransform

__all__ = [
    "DeepSetsEmbedding",
    "MLPEmbedding",
    "ParameterTransform",
    "Standardize",
    "loading_weights",
    "weights_will_be_loaded",
]
