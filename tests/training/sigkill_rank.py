"""Started by ``torchrun`` in ``test_distributed``: the ``polytask`` command line, except that rank 1 of the
first attempt kills itself with SIGKILL just before step 6 (as an out-of-memory killer or a lost node would)."""

import os
import signal

from polytask.training.trainer import Trainer

real_train_step = Trainer.train_step


def train_step(self, batch):
    if self.step == 6 and os.environ.get("RANK") == "1" and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
        os.kill(os.getpid(), signal.SIGKILL)
    return real_train_step(self, batch)


Trainer.train_step = train_step

if __name__ == "__main__":
    from polytask.cli import app

    app(prog_name="polytask")
