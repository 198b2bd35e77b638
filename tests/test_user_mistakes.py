"""The catalogue of user mistakes (issue 17): each is exit code 2 and one line from the CLI, the same line as a
``PolytaskError`` subclass from the Python API, and none leaves a half-made run directory behind.

The CLI runs in this process (typer's runner), so a mistake costs milliseconds; one tiny run is trained
once for the mistakes that need a trained model.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import polytask
from polytask.cli import app
from polytask.errors import ConfigError, DataError, PolytaskError
from tests.conftest import FIXTURES, tiny_config_dict

CONLL = FIXTURES / "conll2000_tiny.txt"


def cli(*args: str, stdin: str | None = None) -> tuple[int, str]:
    """Exit code and stderr of ``polytask ARGS`` run in this process."""
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.stderr


def one_line_error(code: int, stderr: str) -> str:
    """The message of a user error: exit code 2, one line, no traceback."""
    assert code == 2, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: "), stderr
    return stderr.strip().removeprefix("error: ")


pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # training here may set torch's threads


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny run (POS, chunking with iob2, sentiment), trained through ``polytask train --quiet``."""
    root = tmp_path_factory.mktemp("mistakes")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict()))
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(root / "run"), "--quiet",
                                      "--set", "training.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "epoch 1 dev" not in result.stderr and "step" not in result.stderr  # --quiet: no per-epoch lines
    return root / "run"


# --- config mistakes: `polytask train CONFIG`, and the same config through polytask.train --------------------------
@dataclass
class ConfigMistake:
    """A config the user got wrong (``change`` applied to the tiny config), its ``--set`` overrides and its line.

    In ``expected``, ``{tmp}`` is the test's directory and ``{at:TEXT}`` the origin ``FILE:LINE``, LINE being
    the first line of the YAML file holding TEXT; a config passed as a dict has neither, so there the
    ``{at:TEXT}: `` prefix is absent.
    """

    name: str
    change: Callable[[dict, Path], object] = lambda config, tmp: None
    sets: list[str] = field(default_factory=list)
    expected: str = ""
    error: type[PolytaskError] = ConfigError


def expected_line(template: str, tmp: Path, file: Path | None) -> str:
    """``template`` with ``{tmp}`` and each ``{at:TEXT}`` filled in for a YAML ``file`` (None: a dict config)."""
    text = template.replace("{tmp}", str(tmp))
    if file is None:
        return re.sub(r"\{at:[^}]*\}: ", "", text)
    lines = file.read_text().splitlines()
    return re.sub(r"\{at:([^}]*)\}",
                  lambda m: f"{file}:{next(i for i, line in enumerate(lines, 1) if m.group(1) in line)}", text)


def _set(path: str, value) -> Callable[[dict, Path], None]:
    def change(config: dict, tmp: Path) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


def _multilabel_csv(config: dict, tmp: Path) -> None:
    table = tmp / "topics.csv"
    table.write_text("text,topics\nA fine film .,arts;film\nRates rose .,economy\nA dull plot .,arts\n"
                     "Prices fell .,economy\n")
    config["tasks"]["topics"] = {"type": "multilabel", "data": {"format": "csv", "train": str(table),
                                 "column": "topics", "split": {"dev": 0.5, "seed": 1}}}


CONFIG_MISTAKES = [
    ConfigMistake("tasks_per_step above the number of tasks", _set("sampling.tasks_per_step", 5),
                  expected="{at:tasks_per_step:}: sampling.tasks_per_step: 5 tasks per step, but the config has 3 (chunk, pos, "
                           "sentiment); use at most 3 or 'all'"),
    ConfigMistake("a --set error is blamed on the --set", sets=["training.epochs=abc"],
                  expected="--set training.epochs=abc: training.epochs: Input should be a valid integer, unable to "
                           "parse string as an integer"),
    ConfigMistake("a file error is blamed on the file", _set("training.epochz", 3),
                  expected="{at:epochz:}: training.epochz: unknown field (check its spelling)"),
    ConfigMistake("every problem is listed, each with its origin",
                  lambda config, tmp: (config["training"].update(epochz=3), config["encoder"].update(hiddem=8)),
                  sets=["heads.pos.layer=top"],
                  expected="{at:hiddem:}: encoder.hiddem: unknown field (check its spelling); --set "
                           "heads.pos.layer=top: heads.pos.layer: must be a layer number (0 = embeddings, -1 = last) "
                           "or 'mix', not 'top'; {at:epochz:}: training.epochz: unknown field (check its spelling)"),
    ConfigMistake("a task-name typo in --set heads", sets=["heads.nre.layer=1"],
                  expected="--set heads.nre.layer=1: heads.nre: unknown task 'nre'; the tasks are chunk, pos, "
                           "sentiment"),
    ConfigMistake("a task-name typo in --set tasks", sets=["tasks.nre.scheme=iob2"],
                  expected="--set tasks.nre.scheme=iob2: tasks.nre: unknown task 'nre'; the tasks are chunk, pos, "
                           "sentiment (to add a task with --set, give its type and data too)"),
    ConfigMistake("a head for an unknown task in the file", _set("heads.ner", {"layer": 1}),
                  expected="{at:ner:}: heads.ner: unknown task 'ner'; the tasks are chunk, pos, sentiment"),
    ConfigMistake("an epoch over an unknown task", _set("training.epoch", {"task": "ner"}),
                  expected="{at:task: ner}: training.epoch.task: unknown task 'ner'; the tasks are chunk, pos, sentiment"),
    ConfigMistake("a directory given as a data file", sets=["tasks.pos.data.train={tmp}"],
                  expected="--set tasks.pos.data.train={tmp}: tasks.pos.data.train: file is a directory, not a "
                           "file: {tmp}"),
    ConfigMistake("a missing data file", _set("tasks.chunk.data.test", "{tmp}/nope.txt"),
                  expected="{at:nope.txt}: tasks.chunk.data.test: file not found: {tmp}/nope.txt"),
    ConfigMistake("a comment prefix on a non-column format", _set("tasks.sentiment.data.comment", "#"),
                  expected="{at:comment:}: tasks.sentiment.data.comment: applies to format 'conll' only (format 'lines' "
                           "has its own comment rules or none)"),
    ConfigMistake("an unknown balancing method (found while setting up the trainer)", sets=["balancing.method=nope"],
                  expected="balancing.method: unknown method 'nope'; choose one of aligned_mtl, cagrad, db_mtl, "
                           "dualproj, dwa, ew, famo, gls, graddrop, gradnorm, gradvac, imtl_g, imtl_l, mgda, nash_mtl, "
                           "pcgrad, rlw, static, upgrad, uw"),
    ConfigMistake("multi-label cells with another separator than the default", _multilabel_csv,
                  expected="{tmp}/topics.csv:2: task 'topics': class 'arts;film' holds ';', but labels are split on "
                           "','; set tasks.topics.options.separator to ';' (or to ',' to keep 'arts;film' as one "
                           "class)", error=DataError),
]


def _prepared(mistake: ConfigMistake, tmp_path: Path) -> tuple[dict, list[str], Path]:
    """The mistaken config as a dict, its overrides, and the same config written to ``tmp_path/c.yaml``."""
    config = tiny_config_dict()
    mistake.change(config, tmp_path)
    config = json.loads(json.dumps(config).replace("{tmp}", str(tmp_path)))
    sets = [text.replace("{tmp}", str(tmp_path)) for text in mistake.sets]
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(config))
    return config, sets, file


@pytest.mark.parametrize("mistake", CONFIG_MISTAKES, ids=lambda m: m.name)
def test_a_config_mistake_is_one_line_exit_2_and_writes_nothing(mistake: ConfigMistake, tmp_path: Path) -> None:
    _, sets, file = _prepared(mistake, tmp_path)
    out = tmp_path / "run"
    args = ["train", str(file), "--out", str(out), "--quiet"] + [a for text in sets for a in ("--set", text)]
    message = one_line_error(*cli(*args))
    assert message == expected_line(mistake.expected, tmp_path, file)
    assert not out.exists(), "a failed validation left a run directory behind"


@pytest.mark.parametrize("mistake", CONFIG_MISTAKES, ids=lambda m: m.name)
def test_the_api_raises_the_line_the_cli_prints(mistake: ConfigMistake, tmp_path: Path) -> None:
    config, sets, file = _prepared(mistake, tmp_path)
    with pytest.raises(mistake.error) as from_path:
        polytask.train(str(file), out=str(tmp_path / "run"), overrides=sets, progress=False)
    assert str(from_path.value) == expected_line(mistake.expected, tmp_path, file)
    with pytest.raises(mistake.error) as from_dict:  # a dict has no file: its problems name only the field
        polytask.train(config, overrides=sets, progress=False)
    assert str(from_dict.value) == expected_line(mistake.expected, tmp_path, None)
    assert not (tmp_path / "run").exists()


def test_a_corrected_rerun_is_not_blocked(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(tiny_config_dict()))
    out = tmp_path / "run"
    one_line_error(*cli("train", str(file), "--out", str(out), "--quiet", "--set", "balancing.options={nope: 1}"))
    assert not out.exists()
    code, stderr = cli("train", str(file), "--out", str(out), "--quiet", "--set", "training.max_steps=1")
    assert code == 0, stderr
    assert (out / "summary.json").is_file()


def test_a_config_path_that_is_a_directory(tmp_path: Path) -> None:
    assert one_line_error(*cli("train", str(tmp_path), "--out", str(tmp_path / "run"))) == \
        f"config file is a directory, not a file: {tmp_path}"
    with pytest.raises(ConfigError, match="^config file is a directory, not a file: "):
        polytask.train(tmp_path)


def test_a_config_that_is_not_a_config() -> None:
    with pytest.raises(ConfigError, match="^a config is a YAML file path, a mapping or an ExperimentConfig, not int$"):
        polytask.train(3)


def test_an_unknown_device_is_blamed_on_the_option(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(tiny_config_dict()))
    assert one_line_error(*cli("train", str(file), "--out", str(tmp_path / "run"), "--device", "gpu")) == \
        "--device: unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps"


# --- prediction inputs that do not match --format -----------------------------------------------------------------
def _inputs(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, content, fmt, expected", [
    ("in.jsonl", '{"text": "The cat sat ."}\n{"text": "He left ."}\n', "text",
     "{path}:1: a JSON object, but --format is text; for JSON lines pass --format jsonl"),
    ("in.jsonl", '{"tokens": ["The", "cat"]}\n', "conll",
     "{path}:1: a JSON object, but --format is conll; for JSON lines pass --format jsonl"),
    ("in.txt", "The cat sat on the mat .\nHe left .\n", "conll",
     "{path}:2: 3 columns here but 7 on line 1: not a CoNLL column file (one token per line, blank lines between "
     "sentences); for one sentence per line pass --format text"),
    ("words.txt", "word\n" * 300, "conll",
     "{path}: 300 lines and no blank line, so --format conll reads one 300-token sentence; separate sentences by "
     "blank lines, or for one sentence per line pass --format text"),
    ("in.conll", CONLL.read_text(), "text",
     "{path}: looks like a CoNLL column file (3 columns on every line, blank lines between sentences), but --format "
     "is text (one sentence per line); pass --format conll"),
    ("in.txt", "The cat sat .\n", "jsonl",
     "{path}:1: invalid JSON: Expecting value; for one sentence per line pass --format text"),
])
def test_predict_checks_the_input_against_its_format(trained_run: Path, tmp_path: Path, name, content, fmt,
                                                     expected) -> None:
    path = _inputs(tmp_path, name, content)
    message = one_line_error(*cli("predict", str(trained_run), "--input", str(path), "--format", fmt))
    assert message == expected.format(path=path)


def test_predict_reads_standard_input_and_names_it_in_errors(trained_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["predict", str(trained_run), "--input", "-"], input="The cat sat .\nHe left .\n")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    from_file = CliRunner().invoke(app, ["predict", str(trained_run), "--input",
                                         str(_inputs(tmp_path, "in.txt", "The cat sat .\nHe left .\n"))])
    assert records == [json.loads(line) for line in from_file.stdout.splitlines()] and len(records) == 2
    assert one_line_error(*cli("predict", str(trained_run), "--input", "-", stdin='{"text": "x"}\n')) == \
        "<stdin>:1: a JSON object, but --format is text; for JSON lines pass --format jsonl"
    assert one_line_error(*cli("predict", str(trained_run), "--input", "-", "--format", "jsonl",
                               stdin='{"text": "ok"}\n{"txt": "x"}\n')) == \
        "<stdin>:2: needs a non-empty 'tokens' list or 'text' string"


def test_predict_input_that_is_a_directory(trained_run: Path, tmp_path: Path) -> None:
    assert one_line_error(*cli("predict", str(trained_run), "--input", str(tmp_path))) == \
        f"input file is a directory, not a file: {tmp_path}"


# --- run files that no longer match -------------------------------------------------------------------------------
def _damaged(run: Path, target: Path, damage: Callable[[dict], None]) -> Path:
    shutil.copytree(run, target)
    labels = json.loads((target / "labels.json").read_text())
    damage(labels)
    (target / "labels.json").write_text(json.dumps(labels))
    return target


@pytest.mark.parametrize("damage, expected", [
    (lambda labels: labels["pos"]["labels"].update(labels=labels["pos"]["labels"]["labels"][:-2]),
     "{run}/labels.json: the label space of task 'pos' no longer fits the weights in {run}/model.safetensors "
     "(heads.pos.net.1.bias is [{n}] there, [{m}] now); restore labels.json or train again"),
    (lambda labels: labels["chunk"]["labels"]["labels"].__setitem__(0, "X-NP"),
     "{run}/labels.json: no valid label space for task 'chunk' (tag 'X-NP' is not valid in scheme 'iob2': expected "
     "O, B-TYPE, I-TYPE)"),
    (lambda labels: labels["sentiment"]["labels"].update(labels=["neg", "neg"]),
     "{run}/labels.json: no valid label space for task 'sentiment' (label 'neg' is listed twice)"),
    (lambda labels: labels["chunk"].update(type="regression"),
     "{run}/labels.json: task 'chunk' is a regression task there but a token_classification task in config.yaml"),
])
def test_labels_json_that_no_longer_matches_is_one_line_naming_it(trained_run: Path, tmp_path: Path, damage,
                                                                  expected) -> None:
    run = _damaged(trained_run, tmp_path / "run", damage)
    n = len(json.loads((trained_run / "labels.json").read_text())["pos"]["labels"]["labels"])
    inputs = _inputs(tmp_path, "in.txt", "The cat sat .\n")
    message = one_line_error(*cli("predict", str(run), "--input", str(inputs)))
    assert message == expected.format(run=run, n=n, m=n - 2)
    with pytest.raises(PolytaskError) as caught:
        polytask.load(run)
    assert str(caught.value) == message


# --- the Python API's own inputs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("inputs, expected", [
    (("A premise .", "A hypothesis ."), "input 0: a sentence pair, but no task of this model reads pairs"),
    (["fine", ("a", "b")], "input 1: a sentence pair, but no task of this model reads pairs"),
    ("  ", "input 0: the input is empty"),
    ([["New", ""]], "input 0: the input must be a non-empty string or a non-empty list of non-empty strings"),
    ([[]], "input 0: the input must be a non-empty string or a non-empty list"),
    (42, "expected a text, a list of texts or token lists, or a (text, text_pair) tuple; got int"),
    (["fine", 7], "input 1: the input must be a non-empty string or a non-empty list"),
    ((("a", "b", "c")), "input 0: a sentence pair is a tuple (first, second), got a tuple of 3"),
])
def test_a_bad_prediction_input_is_an_input_error(trained_run: Path, inputs, expected: str) -> None:
    model = polytask.load(trained_run)
    with pytest.raises(DataError) as caught:  # InputError (a DataError) for the input itself
        model.predict(inputs)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_loading_what_is_not_a_run(tmp_path: Path) -> None:
    file = _inputs(tmp_path, "model.bin", "x")
    with pytest.raises(PolytaskError, match=f"^{file} is a file, not a run directory$"):
        polytask.load(file)
    with pytest.raises(PolytaskError, match="is not a complete run directory: config.yaml is missing"):
        polytask.load(tmp_path)
