"""Networks: the DeepSTN ranker and its backbones, the conditional VAE generator, the attribute
net (regressor and teacher); ``tensors`` turns uint8 images into tensors and names devices."""

from outpool.models.backbone import BACKBONES, SmallCNN
from outpool.models.generator import ConditionalVAE, GeneratorConfig
from outpool.models.ranker import DeepSTN, RankerConfig

__all__ = ["BACKBONES", "ConditionalVAE", "DeepSTN", "GeneratorConfig", "RankerConfig", "SmallCNN"]
