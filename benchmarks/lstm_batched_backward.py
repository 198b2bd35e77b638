"""Why exact per-task gradients loop over tasks on a CPU LSTM: T oneDNN backward passes vs one batched recurrence.

Why: the gradient engine needs T vector-Jacobian products through the shared BiLSTM. PyTorch's
oneDNN LSTM backward has no vmap batching rule, so the engine runs T backward passes. The
alternative is to recompute the gates and run the LSTM's backward recurrence by hand once for all T
cotangents (batch T·B). This script times both for one LSTM layer direction of the
balancing benchmark's tagger (32 sentences × 30 tokens, hidden 128, inputs 100 and 256), checks
that the hand-written gradients match autograd's, prints a table and writes JSON.

Usage: ``python benchmarks/lstm_batched_backward.py [--out FILE.json] [--threads 2] [--tasks 3]``.
"""

from __future__ import annotations

import argparse
import json

import torch
from timing import median_ms  # benchmarks/timing.py, beside this script

LENGTH, BATCH, HIDDEN = 30, 32, 128


def timed(step, repeats: int = 30, warmup: int = 5) -> float:
    """Milliseconds: the median of ``step()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    return median_ms(lambda _: step(), [None] * repeats, warmup=warmup)


def batched_backward(x, outputs, weights, cotangents):
    """Gradients of one LSTM layer for T cotangents at once: gates recomputed, one recurrence over T·B rows."""
    w_ih, w_hh, b_ih, b_hh = weights
    length, batch, size = x.shape
    tasks = cotangents.shape[1]
    h_prev = torch.cat([outputs.new_zeros(1, batch, HIDDEN), outputs[:-1]])
    gates = (torch.addmm(b_ih + b_hh, x.reshape(-1, size), w_ih.t())
             + h_prev.reshape(-1, HIDDEN) @ w_hh.t()).view(length, batch, 4 * HIDDEN)
    i, f, g, o = gates.chunk(4, 2)
    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
    cells, state, update = torch.empty(length, batch, HIDDEN), x.new_zeros(batch, HIDDEN), i * g
    for t in range(length):
        state = torch.addcmul(update[t], f[t], state)
        cells[t] = state
    tanh_c = cells.tanh()
    c_prev = torch.cat([x.new_zeros(1, batch, HIDDEN), cells[:-1]])
    d_gates = torch.empty(length, tasks, batch, 4 * HIDDEN)
    dh, dc = x.new_zeros(tasks, batch, HIDDEN), x.new_zeros(tasks, batch, HIDDEN)
    for t in range(length - 1, -1, -1):
        dh_t = cotangents[t] + dh
        dc_t = dc + dh_t * o[t] * (1 - tanh_c[t] ** 2)
        d_gates[t] = torch.cat([dc_t * g[t] * i[t] * (1 - i[t]), dc_t * c_prev[t] * f[t] * (1 - f[t]),
                                dc_t * i[t] * (1 - g[t] ** 2), dh_t * tanh_c[t] * o[t] * (1 - o[t])], -1)
        dh, dc = d_gates[t] @ w_hh, dc_t * f[t]
    flat = d_gates.permute(1, 0, 2, 3).reshape(tasks, -1, 4 * HIDDEN)
    grad_w_ih = torch.bmm(flat.transpose(1, 2), x.reshape(1, -1, size).expand(tasks, -1, -1))
    grad_w_hh = torch.bmm(flat.transpose(1, 2), h_prev.reshape(1, -1, HIDDEN).expand(tasks, -1, -1))
    return grad_w_ih, grad_w_hh, flat.sum(1), (flat @ w_ih).view(tasks, length, batch, size)


def measure(size: int, tasks: int) -> dict[str, float]:
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(size, HIDDEN)
    x = torch.randn(LENGTH, BATCH, size, requires_grad=True)
    outputs, _ = lstm(x)
    parameters = list(lstm.parameters())
    cotangents = torch.randn(LENGTH, tasks, BATCH, HIDDEN)

    def looped() -> None:
        for k in range(tasks):
            torch.autograd.grad(outputs, parameters + [x], cotangents[:, k], retain_graph=True)

    weights = [p.detach() for p in parameters]
    with torch.no_grad():
        mine = batched_backward(x.detach(), outputs.detach(), weights, cotangents)
    reference = torch.autograd.grad(outputs, parameters + [x], cotangents[:, 0], retain_graph=True)
    error = max(float((reference[0] - mine[0][0]).abs().max()), float((reference[1] - mine[1][0]).abs().max()),
                float((reference[4] - mine[3][0]).abs().max()))
    with torch.no_grad():
        batched = timed(lambda: batched_backward(x.detach(), outputs.detach(), weights, cotangents))
    one = timed(lambda: torch.autograd.grad(outputs, parameters + [x], cotangents[:, 0], retain_graph=True))
    return {"input": size, "tasks": tasks, "onednn_one_ms": one, "onednn_looped_ms": timed(looped),
            "batched_recurrence_ms": batched, "max_abs_error": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(size, args.tasks) for size in (100, 2 * HIDDEN)]
    print(f"{'input':>5} {'1 backward':>11} {'T looped':>9} {'T batched':>10} {'max error':>10}")
    for r in rows:
        print(f"{r['input']:5d} {r['onednn_one_ms']:9.2f}ms {r['onednn_looped_ms']:7.2f}ms "
              f"{r['batched_recurrence_ms']:8.2f}ms {r['max_abs_error']:10.1e}")
    if args.out:
        with open(args.out, "w") as stream:
            json.dump({"threads": args.threads, "torch": torch.__version__, "rows": rows}, stream, indent=2)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
