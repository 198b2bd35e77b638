"""Loss weightings, one file per method; importing the package registers them all."""

from polytask.balancing.weightings.db_mtl import DualBalancing
from polytask.balancing.weightings.dwa import DynamicWeightAverage
from polytask.balancing.weightings.famo import FAMO
from polytask.balancing.weightings.gls import GeometricLossStrategy
from polytask.balancing.weightings.gradnorm import GradNorm
from polytask.balancing.weightings.imtl_l import ImpartialLossWeighting
from polytask.balancing.weightings.random_weighting import RandomLossWeighting
from polytask.balancing.weightings.static import StaticWeighting
from polytask.balancing.weightings.uncertainty import UncertaintyWeighting

__all__ = [
    "DualBalancing",
    "DynamicWeightAverage",
    "FAMO",
    "GeometricLossStrategy",
    "GradNorm",
    "ImpartialLossWeighting",
    "RandomLossWeighting",
    "StaticWeighting",
    "UncertaintyWeighting",
]
