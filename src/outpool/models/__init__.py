"""Networks: the DeepSTN ranker and its backbones (the generator and control come later)."""

from outpool.models.backbone import BACKBONES, SmallCNN
from outpool.models.ranker import DeepSTN, RankerConfig

__all__ = ["BACKBONES", "DeepSTN", "RankerConfig", "SmallCNN"]
