"""Gradient aggregators, one file per method; importing this package registers them all."""

from polytask.balancing.aggregators.aligned_mtl import AlignedMTL
from polytask.balancing.aggregators.cagrad import CAGrad
from polytask.balancing.aggregators.dualproj import DualProj
from polytask.balancing.aggregators.graddrop import GradDrop
from polytask.balancing.aggregators.gradvac import GradVac
from polytask.balancing.aggregators.imtl_g import IMTLG
from polytask.balancing.aggregators.mgda import MGDA
from polytask.balancing.aggregators.nash_mtl import NashMTL
from polytask.balancing.aggregators.pcgrad import PCGrad
from polytask.balancing.aggregators.upgrad import UPGrad

__all__ = ["IMTLG", "MGDA", "AlignedMTL", "CAGrad", "DualProj", "GradDrop", "GradVac", "NashMTL", "PCGrad", "UPGrad"]
