"""Loss weightings, one file per method; importing the package registers them all."""

from polytask.balancing.loss_weightings.db_mtl import DualBalancing
from polytask.balancing.loss_weightings.dwa import DynamicWeightAverage
from polytask.balancing.loss_weightings.equal import EqualWeighting
from polytask.balancing.loss_weightings.famo import FAMO
from polytask.balancing.loss_weightings.gls import GeometricLossStrategy
from polytask.balancing.loss_weightings.gradnorm import GradNorm
from polytask.balancing.loss_weightings.imtl_l import ImpartialLossWeighting
from polytask.balancing.loss_weightings.random_weighting import RandomLossWeighting
from polytask.balancing.loss_weightings.static import StaticWeighting
from polytask.balancing.loss_weightings.uncertainty import UncertaintyWeighting

__all__ = [
    "FAMO",
    "DualBalancing",
    "DynamicWeightAverage",
    "EqualWeighting",
    "GeometricLossStrategy",
    "GradNorm",
    "ImpartialLossWeighting",
    "RandomLossWeighting",
    "StaticWeighting",
    "UncertaintyWeighting",
]
