"""Freezing the shared encoder and releasing it layer group by layer group (gradual unfreezing).

The trainer calls ``EncoderFreezer.start_epoch`` at the start of every epoch; the freezer only
toggles ``requires_grad`` on the shared parameters in the groups of ``Encoder.layer_groups()``,
so it works for any encoder. Every parameter stays in the optimizer (see ``build_param_groups``): a frozen one gets
no gradient, hence no update and no weight decay, and is absent from
``MultiTaskModel.shared_parameters()`` while frozen.
"""

from __future__ import annotations

from torch import nn

from polytask.config import TrainingConfig
from polytask.models.multitask import MultiTaskModel
from polytask.training.optim import shared_layer_groups


class EncoderFreezer:
    """Holds a frozen encoder's layer groups fixed and unfreezes them top-down at epoch starts.

    Why: training new heads on a trained encoder with the encoder released at once lets the
    heads' early, large gradients overwrite what the encoder knew; gradual unfreezing (Howard
    & Ruder 2018, "Universal Language Model Fine-tuning for Text Classification", ACL, §3.2)
    trains the heads first and releases the top group, then one more group per epoch.
    With ``unfreeze: {start_epoch: s, groups_per_epoch: g}`` epoch e trains the top
    ``min(L, (e - s + 1) * g)`` of the L groups (none before epoch s). Only parameters that
    were trainable when the freezer was built are ever unfrozen; a task's own encoder parameters
    (per-task adapters) are task-specific and never frozen here.
    """

    def __init__(self, model: MultiTaskModel, config: TrainingConfig):
        self.groups: list[list[nn.Parameter]] = shared_layer_groups(model)
        self.freeze, self.unfreeze = config.freeze_encoder, config.unfreeze
        self.trainable: list[int] | None = None

    def trainable_groups(self, epoch: int) -> list[int]:
        """Indices (0 = embeddings) of the layer groups that train in ``epoch`` (1-based)."""
        count = len(self.groups)
        if self.freeze:
            if self.unfreeze is None or epoch < self.unfreeze.start_epoch:
                count = 0
            else:
                count = min(count, (epoch - self.unfreeze.start_epoch + 1) * self.unfreeze.groups_per_epoch)
        return list(range(len(self.groups) - count, len(self.groups)))

    def start_epoch(self, epoch: int) -> bool:
        """Set ``requires_grad`` for ``epoch``; True when the set of training groups changed."""
        trainable = self.trainable_groups(epoch)
        if trainable == self.trainable:
            return False
        for k, group in enumerate(self.groups):
            for parameter in group:
                parameter.requires_grad_(k in trainable)
        self.trainable = trainable
        return True
