"""Task heads: token-level and pooled sentence-level."""

from polytask.models.heads.sequence_head import SequenceHead
from polytask.models.heads.token_head import TokenHead

__all__ = ["SequenceHead", "TokenHead"]
