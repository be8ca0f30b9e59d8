"""Networks: the DeepSTN ranker and its backbones, the linear ranker, their blend, the
conditional VAE generator, the attribute net (regressor and teacher); ``tensors`` turns uint8
images into tensors and names devices."""

from outpool.models.backbone import BACKBONES, SmallCNN
from outpool.models.blend import BlendConfig, BlendRanker
from outpool.models.generator import ConditionalVAE, GeneratorConfig
from outpool.models.linear import LinearRanker, LinearRankerConfig
from outpool.models.ranker import DeepSTN, RankerConfig

Ranker = DeepSTN | LinearRanker | BlendRanker  # what a ranker.pt holds (train.ranker.load_ranker)

__all__ = [
    "BACKBONES",
    "BlendConfig",
    "BlendRanker",
    "ConditionalVAE",
    "DeepSTN",
    "GeneratorConfig",
    "LinearRanker",
    "LinearRankerConfig",
    "Ranker",
    "RankerConfig",
    "SmallCNN",
]
