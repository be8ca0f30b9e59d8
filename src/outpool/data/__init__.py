"""The data model: image tables, pair tables and dataset folders."""

from outpool.data.dataset import AttributeInfo, Dataset
from outpool.data.images import IMAGE_SIZE, ImageTable
from outpool.data.pairs import LABELS, PAIR_SOURCES, PairTable

__all__ = [
    "IMAGE_SIZE",
    "LABELS",
    "PAIR_SOURCES",
    "AttributeInfo",
    "Dataset",
    "ImageTable",
    "PairTable",
]
