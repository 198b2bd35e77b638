"""The linear-chain CRF against brute force, and constrained decoding that never emits an ill-formed chunk."""

from __future__ import annotations

import itertools

import pytest
import torch

from polytask.tasks.crf import CRFDecoder
from polytask.tasks.decoding import DISALLOWED, length_mask, log_partition, path_score, viterbi
from polytask.tasks.metrics.spans import extract_spans
from polytask.tasks.softmax_decoder import SoftmaxDecoder
from polytask.tasks.tag_constraints import encode_spans, scheme_constraints, well_formed
from polytask.tasks.token_classification import TokenClassification


def random_chain(seed: int, batch: int = 4, width: int = 4, tags: int = 3):
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, width, tags, generator=generator, dtype=torch.float64)
    transitions, start, end = (torch.randn(*shape, generator=generator, dtype=torch.float64)
                               for shape in ((tags, tags), (tags,), (tags,)))
    lengths = [width] + torch.randint(1, width + 1, (batch - 1,), generator=generator).tolist()
    return emissions, transitions, start, end, lengths


def brute_scores(emissions, transitions, start, end, length):
    """score(y) of every tag sequence of one sentence's first ``length`` tokens."""
    tags = emissions.shape[-1]
    scores = {}
    for path in itertools.product(range(tags), repeat=length):
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        score = score + sum(transitions[a, b] for a, b in itertools.pairwise(path))
        scores[path] = score
    return scores


@pytest.mark.parametrize("seed", range(5))
def test_log_partition_path_score_and_viterbi_equal_brute_force_with_padding(seed: int) -> None:
    emissions, transitions, start, end, lengths = random_chain(seed)
    mask = length_mask(lengths, emissions.shape[1], "cpu")
    log_z = log_partition(emissions, mask, transitions, start, end)
    best = viterbi(emissions, mask, transitions, start, end)
    for i, length in enumerate(lengths):
        scores = brute_scores(emissions[i], transitions, start, end, length)
        expected = torch.logsumexp(torch.stack(list(scores.values())), dim=0)
        assert torch.allclose(log_z[i], expected, atol=1e-10)
        argmax = max(scores, key=lambda path: scores[path])
        assert tuple(best[i, :length].tolist()) == argmax
        path = torch.tensor([list(argmax) + [0] * (emissions.shape[1] - length)])
        assert torch.allclose(path_score(emissions[i : i + 1], path, mask[i : i + 1], transitions, start, end)[0],
                              scores[argmax], atol=1e-10)


def test_crf_loss_is_the_mean_nll_per_labelled_token_and_skips_unlabelled_rows() -> None:
    emissions, _, _, _, lengths = random_chain(3)
    crf = CRFDecoder(3).double()
    torch.nn.init.normal_(crf.transitions)
    tags = torch.randint(0, 3, emissions.shape[:2])
    mask = length_mask(lengths, emissions.shape[1], "cpu")
    tags = tags.masked_fill(~mask, -100)
    tags[1] = -100  # an unlabelled sentence
    kept = [0, 2, 3]
    total = 0.0
    for i in kept:
        scores = brute_scores(emissions[i].float().double(), *[s.double() for s in crf.scores()], lengths[i])
        log_z = torch.logsumexp(torch.stack(list(scores.values())), dim=0)
        total += float((log_z - scores[tuple(tags[i, : lengths[i]].tolist())]).detach())
    expected = total / sum(lengths[i] for i in kept)
    assert crf.loss(emissions, tags).item() == pytest.approx(expected, rel=1e-5)


def test_crf_marginals_sum_to_one_and_match_brute_force() -> None:
    emissions, _, _, _, lengths = random_chain(4)
    crf = CRFDecoder(3)
    torch.nn.init.normal_(crf.transitions)
    marginals = crf.marginals(emissions.float(), lengths)
    assert torch.allclose(marginals[0].sum(-1), torch.ones(emissions.shape[1]), atol=1e-5)
    scores = brute_scores(emissions[0].float(), *crf.scores(), lengths[0])
    z = torch.logsumexp(torch.stack(list(scores.values())), dim=0)
    expected = torch.zeros(emissions.shape[1], 3)
    for path, score in scores.items():
        for t, y in enumerate(path):
            expected[t, y] += torch.exp(score - z)
    assert torch.allclose(marginals[0], expected, atol=1e-5)


SCHEMES = {
    "iob1": ["O", "I-A", "B-A", "I-B", "B-B"],
    "iob2": ["O", "B-A", "I-A", "B-B", "I-B"],
    "iobes": ["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"],
}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("decoder", ["crf", "softmax"])
def test_constrained_decoding_never_emits_an_ill_formed_chunk(scheme: str, decoder: str) -> None:
    task = TokenClassification("t", scheme=scheme)
    task.labels_from_json({"labels": SCHEMES[scheme]})
    chain = task.configure_decoder(decoder, True)
    if decoder == "crf":
        torch.nn.init.normal_(chain.transitions, std=3.0)  # disallowed ones stay out whatever they learn
    generator = torch.Generator().manual_seed(0)
    emissions = 4 * torch.randn(64, 7, len(SCHEMES[scheme]), generator=generator)
    lengths = torch.randint(1, 8, (64,), generator=generator).tolist()
    unconstrained = 0
    for tags, raw in zip(task.decode(emissions, lengths), emissions.argmax(-1).tolist()):
        assert tags == well_formed(tags, scheme)  # the canonical encoding of its own chunks
        names = [task.tags.names[i] for i in raw[: len(tags)]]
        unconstrained += names != well_formed(names, scheme)
    assert unconstrained > 0  # the plain argmax would have emitted ill-formed chunks


@pytest.mark.parametrize("scheme", SCHEMES)
def test_allowed_sequences_are_exactly_the_well_formed_ones(scheme: str) -> None:
    names = SCHEMES[scheme]
    constraints = scheme_constraints(names, scheme)
    for length in (1, 2, 3):
        for path in itertools.product(range(len(names)), repeat=length):
            allowed = bool(constraints.start[path[0]] and constraints.end[path[-1]]) and all(
                bool(constraints.transitions[a, b]) for a, b in itertools.pairwise(path))
            tags = [names[i] for i in path]
            assert allowed == (tags == well_formed(tags, scheme)), tags


def test_encode_spans_round_trips_through_extract_spans() -> None:
    spans = [("A", 0, 2), ("A", 2, 3), ("B", 4, 5)]
    for scheme in SCHEMES:
        assert extract_spans(encode_spans(spans, 6, scheme), scheme) == spans
    assert encode_spans(spans, 6, "iob1") == ["I-A", "I-A", "B-A", "O", "I-B", "O"]


def test_constrained_softmax_has_no_parameters_and_no_saved_state() -> None:
    decoder = SoftmaxDecoder(5, scheme_constraints(SCHEMES["iob2"], "iob2"))
    assert not list(decoder.parameters()) and not decoder.state_dict()
    assert decoder.transitions[0, 2] == DISALLOWED  # O -> I-A


def test_crf_gold_tags_are_re_encoded_well_formed() -> None:
    task = TokenClassification("t", scheme="iob2")
    task.labels_from_json({"labels": SCHEMES["iob2"]})
    task.configure_decoder("crf", None)
    targets, _ = task.encode_targets([["O", "I-A", "I-A"]], 3)
    assert [task.tags.names[i] for i in targets[0]] == ["O", "B-A", "I-A"]  # the chunk conlleval reads in O I-A I-A


def test_a_masked_position_inside_a_sentence_is_skipped_as_if_removed() -> None:
    emissions, transitions, start, end, _ = random_chain(7, batch=1, width=5)
    mask = torch.tensor([[True, True, False, True, False]])
    kept = emissions[:, [0, 1, 3]]
    full = torch.ones(1, 3, dtype=torch.bool)
    tags = torch.tensor([[2, 0, 1, 1, 0]])
    assert torch.allclose(log_partition(emissions, mask, transitions, start, end),
                          log_partition(kept, full, transitions, start, end))
    assert torch.allclose(path_score(emissions, tags, mask, transitions, start, end),
                          path_score(kept, tags[:, [0, 1, 3]], full, transitions, start, end))
    assert viterbi(emissions, mask, transitions, start, end)[:, [0, 1, 3]].tolist() == \
        viterbi(kept, full, transitions, start, end).tolist()
