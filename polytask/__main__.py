"""``python -m polytask``: the command line (what ``torchrun -m polytask train ...`` starts on every rank)."""

from polytask.cli import app

if __name__ == "__main__":
    app(prog_name="polytask")
