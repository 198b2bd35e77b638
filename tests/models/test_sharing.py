"""Sharing architectures: the equalities they promise, their gates, their representation cut, their config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from polytask.balancing.balancer import StepContext
from polytask.balancing.engine import build_engine
from polytask.config import validate_config
from polytask.data.batching import collate
from polytask.errors import ConfigError
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict

ARCHITECTURES = {
    "hard": {"type": "hard"},
    "branched": {"type": "branched", "groups": [["pos", "chunk"], ["sentiment"]]},
    "branched-unshared": {"type": "branched", "groups": [["pos"], ["chunk", "sentiment"]], "shared_input": False,
                          "shared_layers": 0},
    "mmoe": {"type": "mmoe", "experts": 3},
    "mmoe-ffn": {"type": "mmoe", "experts": 2, "blocks": "ffn"},
    "ple": {"type": "ple", "shared_experts": 2},
    "cgc": {"type": "cgc"},
    "cross_stitch": {"type": "cross_stitch"},
    "soft": {"type": "soft"},
}


def config(sharing: dict | None = None, encoder: str = "bilstm", dropout: float | None = None, **training) -> dict:
    data = tiny_config_dict()
    data["encoder"]["type"] = encoder
    if dropout is not None:
        data["encoder"].update(dropout=dropout, embedding_dropout=dropout)
    if sharing is not None:
        data["sharing"] = sharing
    data["training"].update(training)
    return data


def trained(data: dict, steps: int = 3) -> Trainer:
    data["training"].update(max_steps=steps, epochs=1)
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    for step in range(steps):
        trainer.train_step(trainer.steps.build(step, steps))
    return trainer


def batch_of(experiment, examples):
    return collate(examples, experiment.model.encoder.featurizer, experiment.tasks)


# ------------------------------------------------------------------ equalities the architectures promise
@pytest.mark.parametrize(("encoder", "method", "checksum"), [("bilstm", "ew", 2339.196879102692),
                                                             ("cnn", "pcgrad", 998.1526950919651)])
def test_default_sharing_trains_the_same_model_as_before_sharing_architectures(encoder: str, method: str,
                                                                               checksum: float) -> None:
    """The checksums are those of the same runs made before the ``sharing`` section existed (commit 5f2804a)."""
    sums = []
    for sharing in (None, {"type": "hard"}):
        data = config(sharing, encoder, epochs=2, epoch={"steps": 3}, threads=1)
        if encoder == "cnn":
            data["heads"] = {}
        data["balancing"] = {"method": method}
        trainer = Trainer(build_experiment(validate_config(data)), progress=False)
        trainer.fit()
        state = trainer.model.state_dict()
        sums.append(sum(float(v.double().abs().sum()) for v in state.values()))
        assert not any(key.startswith("sharing.") for key in state)
    assert sums[0] == sums[1]
    assert sums[0] == pytest.approx(checksum, rel=1e-9)


@pytest.mark.parametrize("sharing", [{"type": "mmoe", "experts": 1}, {"type": "branched", "groups": [["pos", "chunk", "sentiment"]]}],
                         ids=["mmoe-one-expert", "branched-one-group"])
@pytest.mark.parametrize("encoder", ["bilstm", "cnn"])
def test_one_expert_or_one_group_trains_exactly_as_hard_sharing(sharing: dict, encoder: str) -> None:
    hard = trained(config({"type": "hard"}, encoder, dropout=0.3))
    other = trained(config(sharing, encoder, dropout=0.3))
    hard_state, other_state = hard.model.state_dict(), other.model.state_dict()
    extra = set(other_state) - set(hard_state)
    assert all(key.startswith("sharing.gates.") for key in extra)  # MMoE's gates; branched adds nothing
    assert all(torch.equal(hard_state[key], other_state[key]) for key in hard_state)  # bit for bit, after 3 steps
    examples = hard.experiment.corpus.examples("dev")
    for model in (hard.model, other.model):
        model.eval()
    inputs = batch_of(hard.experiment, examples).inputs
    for task, logits in hard.model(inputs).logits.items():
        assert torch.equal(logits, other.model(inputs).logits[task])


def test_cross_stitch_with_identity_mixing_is_independent_towers() -> None:
    experiment = build_experiment(validate_config(config({"type": "cross_stitch", "init_self": 1.0})))
    model = experiment.model.eval()
    sharing = model.sharing
    batch = batch_of(experiment, experiment.corpus.examples("train")[:4])
    output = model(batch.inputs)
    encoder = model.encoder
    for task in model.tasks:
        tower = sharing.tower(task)
        alone = tower.run(encoder, None, batch.inputs["mask"], batch.inputs)  # the tower by itself, no mixing
        expected = model.heads[task](alone[model.head_layers[task]], batch.inputs["mask"])
        assert torch.equal(output.logits[task], expected)
    # each task's loss reaches its own tower only (its gradient on every other tower is exactly zero)
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    with torch.random.fork_rng():
        out = model(batch.inputs)
    for task in ("pos", "chunk"):
        loss = experiment.tasks[task].loss(out.logits[task], batch.targets[task], batch.labelled[task])
        for other in model.tasks:
            tower = sharing.tower(other)  # the first task's tower is the encoder's own layers
            params = [p for index in range(tower.count) for p in tower.layer_parameters(index)]
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            nonzero = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
            assert nonzero == (other == task), (task, other)


def test_soft_sharing_penalty_is_the_pairwise_squared_distance_and_pulls_encoders_together() -> None:
    experiment = build_experiment(validate_config(config({"type": "soft", "strength": 0.5})))
    model = experiment.model
    assert model.penalty() is not None and float(model.penalty()) == 0.0  # every encoder starts as a copy
    towers = [model.sharing.tower(t) for t in model.tasks]
    with torch.no_grad():
        for p in towers[1].parameters():
            p.add_(0.01)
    expected = 0.5 * sum(sum(float((a.double() - b.double()).pow(2).sum()) for a, b in zip(x.parameters(), y.parameters()))
                         for i, x in enumerate(towers) for y in towers[i + 1:])
    penalty = model.penalty()
    assert float(penalty) == pytest.approx(expected, rel=1e-5)
    penalty.backward()
    gap = next(iter(towers[1].parameters())).grad  # towers[1] is above the others: its gradient pushes it down
    assert gap is not None and bool((gap > 0).all())
    assert model.shared_parameters() == {}  # every encoder is its task's own


# ------------------------------------------------------------------ gates
@pytest.mark.parametrize("sharing", [{"type": "mmoe", "experts": 3}, {"type": "ple", "shared_experts": 2}])
def test_gates_sum_to_one_and_padding_changes_no_real_token(sharing: dict) -> None:
    experiment = build_experiment(validate_config(config(sharing)))
    model = experiment.model.eval()
    with torch.no_grad():  # gates away from uniform, so that the check means something
        for name, p in model.sharing.named_parameters():
            if "gate" in name:
                p.normal_(0, 1.0)
    examples = experiment.corpus.examples("train")
    short = min(examples, key=lambda e: len(e.tokens))
    long = max(examples, key=lambda e: len(e.tokens))
    alone, padded = batch_of(experiment, [short]), batch_of(experiment, [short, long])
    gate = model.sharing.gates["pos"] if sharing["type"] == "mmoe" else model.sharing.task_gates["pos"][0]
    states = {}
    for name, batch in (("alone", alone), ("padded", padded)):
        below = model.sharing.split.run_bottom(model.encoder, batch.inputs)[-1]
        weights = gate(below)
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-6)
        assert float(weights.std()) > 0.01  # not uniform
        states[name] = (weights, model(batch.inputs).logits)
    n = len(short.tokens)
    assert torch.allclose(states["alone"][0][0, :n], states["padded"][0][0, :n], atol=1e-6)
    for task in model.tasks:
        a, b = states["alone"][1][task], states["padded"][1][task]
        assert torch.allclose(a[0, :n] if a.dim() == 3 else a[0], b[0, :n] if b.dim() == 3 else b[0], atol=1e-5)


# ------------------------------------------------------------------ the representation cut
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_engine_task_gradients_equal_each_tasks_own_backward_pass(name: str) -> None:
    """With the representation cut in the two-stage products, each task's gradient of the shared parameters is the
    one its loss alone gives, on every architecture (the pos head reads layer 1, below the others: nested taps)."""
    experiment = build_experiment(validate_config(config(ARCHITECTURES[name], dropout=0.0)))
    model = experiment.model
    batch = batch_of(experiment, experiment.corpus.examples("train")[:6])
    tasks = [t for t in model.tasks if batch.labelled[t].any()]

    def losses():
        torch.manual_seed(0)  # the same dropout masks in both passes
        out = model(batch.inputs, tasks)
        return {t: experiment.tasks[t].loss(out.logits[t], batch.targets[t], batch.labelled[t]) for t in tasks}, out

    shared = model.shared_parameters()
    if not shared:
        pytest.skip("nothing is shared")
    values, _ = losses()
    direct = [torch.autograd.grad(values[t], list(shared.values()), retain_graph=True, allow_unused=True) for t in tasks]
    values, out = losses()
    assert out.representation  # the cut the engine receives
    jacobian = build_engine("exact").task_jacobian(
        values, StepContext(shared_parameters=shared, representation=out.representation))
    for i in range(len(tasks)):
        expected = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                              for g, p in zip(direct[i], shared.values())])
        got = torch.cat([block.reshape(-1) for block in jacobian.rows[i]])
        assert torch.allclose(got, expected, atol=1e-6), (name, tasks[i])
    # and every task-specific parameter a loss reaches got that task's gradient (its head, gate, own tower)
    for task in tasks:
        own = {n: p for n, p in model.task_parameters(task).items() if p.grad is not None}
        assert any(n.startswith(f"heads.{task}.") for n in own)


def test_parameters_are_shared_or_one_tasks_own_never_both() -> None:
    for name, sharing in ARCHITECTURES.items():
        model = build_experiment(validate_config(config(sharing))).model
        shared = set(model.shared_parameters())
        owners: dict[str, str] = {}
        for task in model.tasks:
            for parameter in model.task_parameters(task):
                assert parameter not in owners, (name, parameter)
                owners[parameter] = task
        assert not shared & set(owners), name
        assert shared | set(owners) == {n for n, p in model.named_parameters() if p.requires_grad}, name


# ------------------------------------------------------------------ encoders
def test_cnn_and_transformer_encoders(tmp_path: Path) -> None:
    from tests.models.tiny_transformer import make_tiny_bert

    for sharing in ({"type": "ple"}, {"type": "cross_stitch", "init_self": 0.8}):
        trainer = trained(config(sharing, "cnn"), steps=2)
        assert set(trainer.model.sharing.state_dict())
    folder = make_tiny_bert(tmp_path / "bert")
    data = tiny_config_dict()
    data["encoder"] = {"type": "transformer", "model": str(folder), "max_length": 16}
    data["sharing"] = {"type": "mmoe", "experts": 2}  # blocks: ffn, the only choice on a transformer
    trainer = trained(data, steps=2)
    assert trainer.model.sharing.split.copy is False and len(trainer.model.sharing.layer_dims) == 4
    data["sharing"] = {"type": "branched", "groups": [["pos", "chunk"], ["sentiment"]], "blocks": "copy"}
    with pytest.raises(ConfigError, match="sharing.blocks: a TransformerEncoder cannot be split into layers"):
        build_experiment(validate_config(data))


# ------------------------------------------------------------------ config errors
@pytest.mark.parametrize(("sharing", "message"), [
    ({"type": "moe"}, "x.yaml: sharing.type: unknown sharing type 'moe'; choose one of branched, cgc"),
    ({"type": "branched"}, "sharing.groups: sharing type 'branched' needs groups"),
    ({"type": "branched", "groups": [["pos", "chunk"], ["ner"]]}, "sharing.groups: groups name unknown task(s) ner"),
    ({"type": "branched", "groups": [["pos", "chunk"]]}, "sharing.groups: no group holds sentiment"),
    ({"type": "branched", "groups": [["pos", "chunk"], ["chunk", "sentiment"]]}, "sharing.groups: chunk in more than one"),
    ({"type": "mmoe", "shared_layers": 3}, "sharing.shared_layers: 3 is more than the encoder's 2 layers"),
    ({"type": "mmoe", "groups": [["pos"]]}, "sharing.groups: groups does not apply to sharing type 'mmoe'"),
    ({"type": "hard", "experts": 2}, "sharing.experts: experts does not apply to sharing type 'hard'"),
])
def test_config_errors_name_the_file_and_field(sharing: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(config(sharing), file="x.yaml")
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("sharing", "message"), [
    ({"type": "mmoe", "shared_layers": 2}, "sharing.shared_layers: shared_layers 2 leaves no encoder layer above it"),
    ({"type": "cgc", "shared_layers": 0}, "sharing.shared_layers: cgc is one extraction level"),
    ({"type": "cross_stitch", "shared_layers": 1}, "sharing.shared_layers: with shared_input: false no layer above"),
])
def test_architecture_errors_name_the_field(sharing: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_experiment(validate_config(config(sharing)))


def test_groups_from_an_affinity_directory(tmp_path: Path) -> None:
    (tmp_path / "affinity.json").write_text(json.dumps({"measure": "pairs", "groups": [["pos", "chunk"], ["sentiment"]]}))
    resolved = validate_config(config({"type": "branched", "groups": {"from": str(tmp_path)}}), file="x.yaml")
    assert resolved.sharing.groups == [["pos", "chunk"], ["sentiment"]]
    assert resolved.sharing.groups_from == str(tmp_path)
    again = validate_config(resolved.model_dump(mode="json"))  # a run's config.yaml holds the groups themselves
    assert again.sharing.groups == resolved.sharing.groups
    model = build_experiment(resolved).model
    assert model.sharing.groups == [["pos", "chunk"], ["sentiment"]]
    (tmp_path / "affinity.json").write_text(json.dumps({"measure": "pairs", "affinity": []}))
    with pytest.raises(ConfigError, match="sharing.groups.from: .*affinity.json holds no grouping"):
        validate_config(config({"type": "branched", "groups": {"from": str(tmp_path)}}), file="x.yaml")
    with pytest.raises(ConfigError, match="sharing.groups.from: .*not found: run 'polytask affinity"):
        validate_config(config({"type": "branched", "groups": {"from": str(tmp_path / "none")}}), file="x.yaml")
