"""The built-in synthetic world: a shoe renderer, its pixel oracle and the dataset it makes."""

from outpool.synth.oracle import PixelOracle
from outpool.synth.renderer import Nuisance, render
from outpool.synth.shoe import ATTRIBUTE_NAMES, ATTRIBUTES
from outpool.synth.world import SynthConfig, World, build

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "Nuisance",
    "PixelOracle",
    "SynthConfig",
    "World",
    "build",
    "render",
]
