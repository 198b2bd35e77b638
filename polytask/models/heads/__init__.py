"""Task heads: token-level, pooled sentence-level and sentence-pair."""

from polytask.models.heads.pair_head import SentencePairHead, pair_features
from polytask.models.heads.sequence_head import SequenceHead
from polytask.models.heads.token_head import TokenHead

__all__ = ["SentencePairHead", "SequenceHead", "TokenHead", "pair_features"]
