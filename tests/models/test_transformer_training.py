"""Training with the transformer encoder: LoRA adapters (shared, per task), balancing, MiniLM end to end."""

from __future__ import annotations

import pytest
import torch

from polytask.config import validate_config
from polytask.data.batching import collate
from polytask.data.example import Example
from polytask.evaluation.scoring import predict
from polytask.training.run_dir import RunDirectory, load_run
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict
from tests.models.tiny_transformer import make_tiny_bert

pytest.importorskip("peft", reason="peft is not installed (polytask[transformers])")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


def experiment(model: str, adapters: dict | None = None, balancing: dict | None = None, heads: dict | None = None):
    data = tiny_config_dict()
    data["encoder"] = {"type": "transformer", "model": model, "max_length": 16}
    if adapters is not None:
        data["encoder"]["adapters"] = adapters
    data["heads"] = heads or {}
    if balancing is not None:
        data["balancing"] = balancing
    return build_experiment(validate_config(data))


def train_one_step(exp) -> tuple[dict, set[str], int]:
    """One real trainer step: its record, the parameters it changed, and how often the encoder ran."""
    trainer = Trainer(exp, None, progress=False)
    calls = []
    hook = exp.model.encoder.register_forward_hook(lambda *args: calls.append(1))
    before = {n: p.detach().clone() for n, p in exp.model.named_parameters()}
    record = trainer.train_step(trainer.steps.build(0, trainer.total_steps))
    hook.remove()
    changed = {n for n, p in exp.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    return record, changed, len(calls)


def test_shared_lora_trains_only_the_adapter_and_the_heads(tiny_bert) -> None:
    exp = experiment(tiny_bert, adapters={"r": 2}, heads={"sentiment": {"layer": "mix"}})
    model = exp.model
    assert not model.encoder.task_conditioned
    shared = model.shared_parameters()
    assert shared and all(".lora_" in n and ".shared." in n for n in shared)
    assert model.head_layers["sentiment"] == [0, 1, 2]  # the mix reads every transformer layer
    groups = model.encoder.layer_groups()
    assert len(groups) == 3 and not groups[0] and all(groups[1:])  # no adapter on the embeddings
    _, changed, encoder_calls = train_one_step(exp)
    assert encoder_calls == 1  # hard sharing: one encoder pass for every task
    assert changed and all(".lora_" in n or n.startswith("heads.") for n in changed)
    assert any(".lora_B." in n for n in changed) and any(n.startswith("heads.sentiment.mix.") for n in changed)


def test_per_task_lora_gives_each_task_its_own_adapter(tiny_bert) -> None:
    exp = experiment(tiny_bert, adapters={"r": 2, "per_task": True})
    model = exp.model
    assert model.encoder.task_conditioned
    assert model.shared_parameters() == {}  # base frozen, adapters task-specific: nothing is shared
    own = model.task_parameters("pos")
    assert any(".lora_A.pos." in n for n in own) and any(n.startswith("heads.pos.") for n in own)
    assert not any(".chunk." in n or ".sentiment." in n for n in own)
    _, changed, encoder_calls = train_one_step(exp)
    assert encoder_calls == 3  # one pass per present task, each with its adapter
    assert all(".lora_" in n or n.startswith("heads.") for n in changed)
    for task in ("pos", "chunk", "sentiment"):
        assert any(f".lora_B.{task}." in n for n in changed), task
    assert all(p.requires_grad for n, p in model.named_parameters() if ".lora_" in n)  # switching froze nothing
    model.eval()
    batch = collate(exp.corpus.examples("train")[:2], model.encoder.featurizer, {})
    with torch.no_grad():
        states = {t: model.encoder(**batch.inputs, task=t).layers[-1] for t in ("pos", "chunk")}
        again = model.encoder(**batch.inputs, task="pos").layers[-1]
    assert not torch.allclose(states["pos"], states["chunk"], atol=1e-6)
    assert torch.equal(again, states["pos"])


def test_per_task_lora_with_a_trained_encoder_shares_the_base_weights(tiny_bert) -> None:
    exp = experiment(tiny_bert, adapters={"r": 2, "per_task": True, "train_encoder": True})
    shared = exp.model.shared_parameters()
    assert shared and not any(".lora_" in n or ".pooler." in n for n in shared)
    base = [n for n, p in exp.model.encoder.named_parameters() if ".lora_" not in n and ".pooler." not in n]
    assert sorted(shared) == sorted(f"encoder.{n}" for n in base)


@pytest.mark.parametrize("method,mode", [("pcgrad", "representation"), ("mgda", "exact")])
def test_gradient_aggregators_run_with_a_shared_adapter(tiny_bert, method, mode) -> None:
    exp = experiment(tiny_bert, adapters={"r": 2}, balancing={"method": method, "mode": mode})
    record, changed, _ = train_one_step(exp)
    assert set(record["weights"]) == {"pos", "chunk", "sentiment"}
    assert all(v > 0 for v in record["grad_norms"].values())
    assert any(abs(c) > 0 for c in record["cosines"].values())
    assert all(".lora_" in n or n.startswith("heads.") for n in changed)


def test_minilm_trains_end_to_end_and_reloads(tmp_path) -> None:
    data = tiny_config_dict()
    del data["tasks"]["chunk"]
    data["encoder"] = {"type": "transformer", "model": "minilm", "max_length": 12, "subword_pooling": "mean"}
    data["heads"] = {"pos": {"layer": "mix"}, "sentiment": {"layer": -1, "pooling": "mean"}}
    data["training"].update({"epochs": 2, "epoch": {"steps": 2}, "lr": 1e-4, "threads": 1})
    exp = build_experiment(validate_config(data))
    run_dir = RunDirectory(tmp_path / "run").create()
    run_dir.save_setup(exp)
    summary = Trainer(exp, run_dir, progress=False).fit()
    assert set(summary["tasks"]) == {"pos", "sentiment"} and summary["steps"] == 4
    assert 0 <= summary["tasks"]["pos"]["accuracy"]["dev"] <= 100
    reloaded = load_run(tmp_path / "run")  # tokenizer from the package folder, weights from the run
    examples = exp.corpus.examples("dev") + [Example(tokens=["a", "", "sentence", "longer", "than", "one",
                                                             "window", "of", "twelve", "word", "pieces", "."])]
    batch = collate(examples, exp.model.encoder.featurizer, {})
    exp.model.eval()
    with torch.no_grad():
        trained, loaded = exp.model(batch.inputs).logits, reloaded.model(batch.inputs).logits
    assert all(torch.allclose(trained[t], loaded[t], atol=1e-5) for t in ("pos", "sentiment"))
    assert len(predict(reloaded.model, reloaded.tasks, examples)["pos"][-1]) == 12


def test_a_run_with_per_task_adapters_reloads(tiny_bert, tmp_path) -> None:
    exp = experiment(tiny_bert, adapters={"r": 2, "per_task": True}, heads={"pos": {"layer": "mix"}})
    train_one_step(exp)
    run_dir = RunDirectory(tmp_path / "run").create()
    run_dir.save_setup(exp)
    run_dir.save_model(exp)
    reloaded = load_run(tmp_path / "run")
    assert reloaded.model.encoder.task_adapters() == ["pos", "chunk", "sentiment"]
    batch = collate(exp.corpus.examples("train")[:3], exp.model.encoder.featurizer, {})
    exp.model.eval()
    with torch.no_grad():
        trained, loaded = exp.model(batch.inputs).logits, reloaded.model(batch.inputs).logits
    assert all(torch.allclose(trained[t], loaded[t], atol=1e-6) for t in trained)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_exact_mode_row_lookups_match_dense_tables_on_a_transformer(tiny_bert) -> None:
    """The transformer's word, position and token-type tables are looked up through nn.Embedding:
    one UPGrad step takes their per-task gradients at the rows read, with the same result as dense."""
    grads = {}
    for row_lookups in (True, False):
        torch.manual_seed(0)
        exp = experiment(tiny_bert, balancing={"method": "upgrad"})
        trainer = Trainer(exp, None, progress=False)
        trainer.balancer.row_lookups = row_lookups
        exp.model.eval()  # no dropout: both runs see the same forward pass
        exp.model.train = lambda mode=True, model=exp.model: model  # keep eval through train_step
        seen = []
        task_jacobian = trainer.balancer.engine.task_jacobian
        trainer.balancer.engine.task_jacobian = lambda losses, context, *reduce, row_lookups=(), seen=seen, \
            inner=task_jacobian: (seen.append(len(row_lookups)) or inner(losses, context, *reduce, row_lookups=row_lookups))
        before = {n: p.detach().clone() for n, p in exp.model.named_parameters()}
        trainer.optimizer.step = lambda: None  # keep the gradients of the step, not its update
        trainer.train_step(trainer.steps.build(0, trainer.total_steps))
        grads[row_lookups] = {n: p.grad.clone() for n, p in exp.model.named_parameters() if p.grad is not None}
        assert all(torch.equal(p, before[n]) for n, p in exp.model.named_parameters())
        if row_lookups:
            assert seen[0] >= 3  # word, position and token-type tables
    assert grads[True].keys() == grads[False].keys()
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], grad, atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("mode", ["exact", "representation"])
def test_crf_heads_train_on_per_task_adapters_in_every_engine_mode(tiny_bert, mode: str) -> None:
    exp = experiment(tiny_bert, adapters={"r": 2, "per_task": True}, balancing={"method": "pcgrad", "mode": mode},
                     heads={"chunk": {"decoder": "crf", "layer": "mix"}})
    _, changed, encoder_calls = train_one_step(exp)
    assert encoder_calls == 3  # per-task adapters: one pass per task
    assert "heads.chunk.decoder.transitions" in changed
    assert "heads.chunk.decoder.transitions" in exp.model.task_parameters("chunk")
    predicted = predict(exp.model, exp.tasks, exp.corpus.examples("dev")[:4])["chunk"]
    assert all(isinstance(tags, list) for tags in predicted)
