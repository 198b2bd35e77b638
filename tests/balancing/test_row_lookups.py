"""Embedding tables' per-task gradients taken at the rows a step read (row lookups)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polytask.balancing.balancer import StepContext
from polytask.balancing.engine import build_engine
from polytask.balancing.registry import build_balancer
from polytask.balancing.row_lookups import RowLookupRecorder

TASKS = {"pos": 7, "chunk": 5, "ner": 3}
VOCAB = 50


class TwoTableTagger(nn.Module):
    """Words (padding row 0) looked up twice per step (a sentence and its reversal), plus a tag table."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleDict({
            "words": nn.Embedding(VOCAB, 6, padding_idx=0),
            "tags": nn.Embedding(9, 2),
            "lstm": nn.LSTM(8, 5, bidirectional=True, batch_first=True),
        })
        self.heads = nn.ModuleDict({task: nn.Linear(10, n) for task, n in TASKS.items()})

    def forward(self, words, tags, labels, tasks=tuple(TASKS)):
        words_vec = self.encoder["words"](words) + self.encoder["words"](words.flip(1))
        states, _ = self.encoder["lstm"](torch.cat([words_vec, self.encoder["tags"](tags)], -1))
        return {t: nn.functional.cross_entropy(self.heads[t](states).flatten(0, 1), labels[t].flatten()) for t in tasks}


@pytest.fixture
def batch():
    torch.manual_seed(0)
    words = torch.randint(1, 12, (4, 7))  # few distinct rows out of 50
    words[:, -2:] = 0  # padding
    return words, torch.randint(0, 9, (4, 7)), {t: torch.randint(0, n, (4, 7)) for t, n in TASKS.items()}


def step_gradients(method, batch, *, row_lookups, tasks=tuple(TASKS), mode="exact"):
    torch.manual_seed(1)
    model = TwoTableTagger()
    balancer = build_balancer(method, list(TASKS), mode=mode,
                              shared_params=["words", "lstm.weight_hh"] if mode == "subset" else None)
    balancer.attach(model.encoder)  # the balancer owns the recorder of the shared encoder's lookups
    balancer.row_lookups = row_lookups
    with balancer.watch_forward():
        losses = model(*batch, tasks)
    stats = balancer.backward(losses, StepContext(shared_parameters=dict(model.encoder.named_parameters())))
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, stats


@pytest.mark.parametrize("method", ["upgrad", "mgda", "pcgrad", "nash_mtl", "cagrad"])
def test_row_blocks_give_the_dense_update(method, batch):
    """Same gradients on every parameter as with dense per-task table gradients (GradDrop's random
    per-coordinate draw differs in size: its own test below)."""
    dense, dense_stats = step_gradients(method, batch, row_lookups=False)
    rows, row_stats = step_gradients(method, batch, row_lookups=True)
    for name in dense:
        torch.testing.assert_close(rows[name], dense[name], atol=1e-6, rtol=1e-5, msg=name)
    assert dense_stats["grad_norms"] == pytest.approx(row_stats["grad_norms"], rel=1e-5)
    assert rows["encoder.words.weight"][0].abs().sum() == 0  # padding row: no gradient
    assert rows["encoder.words.weight"][12:].abs().sum() == 0  # rows never read


def test_graddrop_on_row_blocks_keeps_one_sign_per_coordinate(batch):
    """GradDrop works per coordinate: rows never read get 0, read rows the positive or negative part."""
    grads, _ = step_gradients("graddrop", batch, row_lookups=True)
    table = grads["encoder.words.weight"]
    assert table[0].abs().sum() == 0 and table[12:].abs().sum() == 0
    assert table[1:12].abs().sum() > 0


def test_jacobian_holds_only_the_rows_read(batch):
    model = TwoTableTagger()
    recorder = RowLookupRecorder(model.encoder)
    words, tags, labels = batch
    losses = model(words, tags, labels)
    context = StepContext(shared_parameters=dict(model.encoder.named_parameters()))
    jacobian = build_engine("exact").task_jacobian(losses, context, row_lookups=recorder.take())
    read = sorted(set(words.flatten().tolist()) - {0})
    by_target = {id(t): k for k, t in enumerate(jacobian.targets)}
    k = by_target[id(model.encoder["words"].weight)]
    assert jacobian.row_indices[k].tolist() == read
    assert jacobian.rows[0][k].shape == (len(read), 6)
    assert jacobian.row_indices[by_target[id(model.encoder["lstm"].weight_ih_l0)]] is None


def test_subset_mode_gramian_from_row_blocks_matches_dense(batch):
    _, dense = step_gradients("upgrad", batch, row_lookups=False, mode="subset")
    _, rows = step_gradients("upgrad", batch, row_lookups=True, mode="subset")
    assert rows["weights"] == pytest.approx(dense["weights"], rel=1e-5)


def test_partial_labels_with_row_blocks(batch):
    dense, _ = step_gradients("upgrad", batch, row_lookups=False, tasks=("chunk",))
    rows, _ = step_gradients("upgrad", batch, row_lookups=True, tasks=("chunk",))
    for name in dense:
        torch.testing.assert_close(rows[name], dense[name], atol=1e-6, rtol=1e-5, msg=name)


def test_recorder_skips_tables_it_cannot_compress_and_gradient_free_forwards():
    module = nn.ModuleDict({
        "plain": nn.Embedding(5, 2),
        "sparse": nn.Embedding(5, 2, sparse=True),
        "counted": nn.Embedding(5, 2, scale_grad_by_freq=True),
        "tied": nn.Embedding(5, 2),
        "frozen": nn.Embedding(5, 2),
    })
    module["output"] = nn.Linear(2, 5)
    module["output"].weight = module["tied"].weight  # tied: the table has a second gradient path
    module["frozen"].weight.requires_grad_(False)
    recorder = RowLookupRecorder(module)
    ids = torch.tensor([1, 2])
    for name in ("plain", "sparse", "counted", "tied", "frozen"):
        module[name](ids)
    assert [lookup.weight is module["plain"].weight for lookup in recorder.take()] == [True]
    assert recorder.take() == []  # take() forgets
    with torch.no_grad():
        module["plain"](ids)
    assert recorder.take() == []
    recorder.remove()
    module["plain"](ids)
    assert recorder.take() == []


def test_trainer_steps_with_row_lookups_match_dense_tables():
    """Through the real trainer (word and character tables): the same weights after three
    UPGrad steps with and without row lookups, and the lookups reach the engine."""
    from polytask.config import validate_config
    from polytask.training.setup import build_experiment
    from polytask.training.trainer import Trainer
    from tests.conftest import tiny_config_dict

    def train(row_lookups: bool):
        data = tiny_config_dict()
        data["balancing"] = {"method": "upgrad"}
        data["training"].update(max_steps=3, epochs=1)
        trainer = Trainer(build_experiment(validate_config(data)), progress=False)
        trainer.balancer.row_lookups = row_lookups
        seen = []
        task_jacobian = trainer.balancer.engine.task_jacobian
        trainer.balancer.engine.task_jacobian = lambda losses, context, *reduce, row_lookups=(): (
            seen.append(len(row_lookups)) or task_jacobian(losses, context, *reduce, row_lookups=row_lookups))
        for step in range(3):
            trainer.train_step(trainer.steps.build(step, 3))
        return dict(trainer.model.named_parameters()), seen

    dense, _ = train(False)
    rows, seen = train(True)
    assert min(seen) >= 2  # the word and the character table
    for name in dense:
        torch.testing.assert_close(rows[name], dense[name], atol=1e-5, rtol=1e-4, msg=name)
