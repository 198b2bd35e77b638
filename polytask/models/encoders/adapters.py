"""LoRA adapters on a pretrained encoder (Hu et al. 2022, LoRA: Low-Rank Adaptation of Large Language Models, ICLR), through peft.

One adapter shared by every task, or one adapter per task (Pfeiffer et al. 2021 keep one
adapter per task for the same reason: tasks stop competing for the same few weights). peft
freezes or unfreezes parameters whenever an adapter is added or activated; here adding or
switching an adapter never changes which parameters train, so the encoder decides that once.
"""

from __future__ import annotations

import re
import warnings

from torch import nn

from polytask.config import AdapterConfig
from polytask.dependencies import require
from polytask.errors import ConfigError

FIELD = "encoder.adapters"


def add_lora(model: nn.Module, name: str, config: AdapterConfig) -> nn.Module:
    """``model`` with a LoRA adapter called ``name`` added (wrapped in a peft model the first time).

    Every parameter keeps its ``requires_grad``; the new adapter's parameters train.
    """
    peft = require("peft", "encoder.adapters", "transformers")
    before = {p: p.requires_grad for p in model.parameters()}
    lora = peft.LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                           target_modules=config.target_modules, bias="none")
    try:
        with warnings.catch_warnings():  # peft calls a transformers method deprecated for v6
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            if isinstance(model, peft.PeftModel):
                model.add_adapter(name, lora)
            else:
                model = peft.get_peft_model(model, lora, adapter_name=name)
    except ValueError as error:
        reason = (str(error).strip().splitlines() or ["invalid adapter"])[0]
        raise ConfigError(f"cannot add a LoRA adapter: {reason}", field=f"{FIELD}.target_modules") from None
    for p in model.parameters():
        p.requires_grad_(before.get(p, True))
    return model


def adapter_parameters(model: nn.Module, name: str, prefix: str = "") -> dict[str, nn.Parameter]:
    """The parameters of adapter ``name`` by qualified name (``prefix`` + the name inside ``model``)."""
    pattern = re.compile(rf"\.lora_\w+\.{re.escape(name)}(\.|$)")
    return {prefix + n: p for n, p in model.named_parameters() if pattern.search(n)}


def activate(model: nn.Module, name: str) -> None:
    """Make adapter ``name`` the one the forward pass uses, leaving every ``requires_grad`` as it was."""
    if getattr(model, "active_adapter", None) == name:
        return
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.set_adapter(name)
    for p, flag in flags:
        p.requires_grad_(flag)


def merged_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its one LoRA adapter folded into the base weights (W + BA·α/r): the same function
    as plain modules, which ``torch.export`` traces like the model without adapters (``peft``'s ``merge_and_unload``)."""
    import copy

    return copy.deepcopy(model).merge_and_unload()
