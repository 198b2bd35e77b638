"""The README's examples work: every ``polytask`` command in it parses against the CLI, and those that
can run on the test fixtures are run, as are its Python snippets.

Substitutions, so that examples written for the real corpora run in seconds: each
``examples/*.yaml`` config is replaced by a tiny one over ``tests/fixtures`` with the same task
names, ``training.max_steps=2`` (one epoch of 12 steps for affinity) is appended to commands that train, placeholders (CONFIG, DIR,
...) get concrete values, ``[optional]`` parts are kept and ``--overwrite`` is added where a later
example writes into the directory of an earlier one. A few commands are only parsed, for
the reason given in ``PARSE_ONLY``; what they do is tested where named.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from polytask.cli import app
from tests.conftest import FIXTURES, tiny_config_dict

README = Path(__file__).resolve().parents[2] / "README.md"
DOCS = sorted((README.parent / "docs").glob("*.md"))
"""The user guide's companions (measured results): their commands are checked like the README's."""
PARSE_ONLY = {
    "serve": "blocks until stopped; tests/serving/test_http.py serves over a real socket",
    "resume": "needs an interrupted run; tests/training/test_resume.py interrupts and resumes runs",
    "demo": "the full built-in benchmark (a minute); tests/test_demo.py runs it",
}
PLACEHOLDERS = {"CONFIG": "examples/conll2000-pos-chunk.yaml",  # DIR: one directory per code block
                "RUN": "runs/pos-chunk", "NEW_RUN": "runs/placeholder-new", "TASK.yaml": "examples/add-ner.yaml",
                "SAMPLER": "temperature", "METHOD": "uw"}
TRAINS = {"train", "finetune", "compare", "affinity"}


def code_blocks(language: str) -> list[str]:
    texts = [README.read_text(encoding="utf-8")] + ([] if language == "python" else
                                                     [doc.read_text(encoding="utf-8") for doc in DOCS])
    return re.findall(rf"```{language}\n(.*?)```", "\n".join(texts), re.S)


def readme_commands() -> list[list[str]]:
    """Every ``polytask`` command line in the README's bash blocks, continuations joined, placeholders filled."""
    commands = []
    for number, block in enumerate(code_blocks("bash")):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s#.*$", "", line).strip()
            line = re.sub(r"^(\w+=\S+\s+)+", "", line)  # OMP_NUM_THREADS=1 ...
            if not line.startswith("polytask "):
                continue
            line = re.sub(r"\[([^\]]*)\]", r"\1", line).replace(" ...", "")
            words = [f"runs/dir-{number}" if w == "DIR" else PLACEHOLDERS.get(w, w) for w in shlex.split(line)[1:]]
            words = [re.sub(r"=([A-Z]+)$", lambda m: "=" + PLACEHOLDERS.get(m.group(1), m.group(1)), w) for w in words]
            commands.append([w.split("|")[0] if w.startswith("--") is False and "|" in w else w for w in words])
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_commands_for_every_cli_command() -> None:
    documented = {command[0] for command in COMMANDS}
    assert documented == set(get_command(app).commands), "a command is missing from the README (or unknown)"


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_every_readme_command_parses(words: list[str]) -> None:
    group = get_command(app)
    command = group.commands[words[0]]
    try:
        command.make_context(words[0], list(words[1:]), resilient_parsing=False)
    except click.exceptions.Exit:
        pass
    except click.UsageError as error:  # unknown option, bad choice, missing argument
        pytest.fail(f"README command 'polytask {' '.join(words)}' does not parse: {error.format_message()}")


def write_fixture_project(root: Path) -> None:
    """examples/*.yaml and the files the README's commands read, over the tiny fixtures."""
    (root / "examples").mkdir()
    pos_chunk = tiny_config_dict()
    del pos_chunk["tasks"]["sentiment"]
    (root / "examples" / "conll2000-pos-chunk.yaml").write_text(yaml.safe_dump(pos_chunk))
    ner = {"type": "token_classification", "scheme": "iob2",
           "data": {"format": "conll", "train": str(FIXTURES / "ner_tiny.txt"), "test": str(FIXTURES / "ner_tiny.txt"),
                    "column": 1, "split": {"dev": 0.3, "seed": 1}}}
    three = tiny_config_dict()
    three["tasks"] = {"ner": ner, "pos": three["tasks"]["pos"], "sentiment": three["tasks"]["sentiment"]}
    for name in ("ner-pos-sentiment.yaml", "minilm-ner-pos-sentiment.yaml"):
        (root / "examples" / name).write_text(yaml.safe_dump(three))
    (root / "examples" / "add-ner.yaml").write_text(yaml.safe_dump({"tasks": {"ner": ner}, "heads": {"ner": {"layer": 2}}}))
    (root / "sentences.txt").write_text("Prices rose sharply .\nHe left .\n")


pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # training here may set torch's threads


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    write_fixture_project(root)
    return root


def test_every_runnable_readme_command_runs_on_the_fixtures(project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    runner = CliRunner()
    ran = []
    for words in COMMANDS:
        if words[0] in PARSE_ONLY:
            continue
        args = list(words)
        if args[0] in TRAINS:
            if args[0] == "affinity":  # the lookahead measures every 10 steps, from step 10 (after Adam's first)
                args += ["--set", "training.epochs=1", "--set", "training.epoch.steps=12"]
            else:
                args += ["--set", "training.max_steps=2"]
            if args[0] in ("train", "finetune", "affinity") and "--overwrite" not in args:
                args.append("--overwrite")
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, f"polytask {' '.join(args)} failed:\n{result.output}"
        ran.append(args[0])
    assert {"train", "evaluate", "predict", "finetune", "compare", "affinity", "report", "methods"} <= set(ran)


@pytest.mark.parametrize("snippet", code_blocks("python"), ids=lambda s: s.splitlines()[0][:50])
def test_readme_python_snippets_run_on_the_fixtures(snippet: str, tmp_path: Path, monkeypatch) -> None:
    write_fixture_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLYTASK_DATA", os.environ.get("POLYTASK_DATA", str(FIXTURES)))
    exec(compile(snippet, f"{README}:python", "exec"), {"__name__": "readme"})


def test_there_is_a_python_snippet() -> None:
    assert code_blocks("python"), "the README should show the Python API"
