"""A lower bound on what SynCo's negatives must cost at the paper's setting, beside the MoCo-v2 head.

Whatever kernel computes them, SynCo's synthetic logits need at least: one read of the (B, K) queue
logits to select the N hardest; the Gaussian noise of type 4 (B x N_4 x D normals, which the exact
gradient needs in full); the queue rows behind mixup's n_i.n_j, noise's n.e and the adversarial
n.sign(q) (B x (2 N_3 + N_4 + N_6) rows of D floats); and, for the gradient, a weighted sum of the
queue rows of every q.n term (``embedding_bag`` over B x (S + N_3) rows). This script times each of
these minimal operations alone, side by side with the MoCo-v2 head, and prints their sum as a
fraction of that head: if the floor already exceeds the head-ratio budget, no amount of kernel work
in eager PyTorch reaches it on this machine.

    .venv/bin/python benchmarks/head_floor.py --repeats 21
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from synco.bench.heads import HeadSetting, _head_functions
from synco.bench.measure import timed_rounds
from synco.engine.cpu_memory import keep_freed_cpu_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--malloc-defaults", action="store_true")
    args = parser.parse_args()
    reuse = not args.malloc_defaults and keep_freed_cpu_memory()
    setting = HeadSetting(repeats=args.repeats)
    b, k, d, n = setting.batch, setting.queue, setting.dim, setting.num_hard
    n1, n2, n3, n4, n5, n6 = setting.counts
    g = torch.Generator().manual_seed(0)
    query = F.normalize(torch.randn(b, d, generator=g), dim=1)
    queue = F.normalize(torch.randn(k, d, generator=g), dim=1)
    logits = query @ queue.T  # (B, K)
    hard = torch.randint(k, (b, n), generator=g)
    rows = torch.randint(k, (b * (2 * n3 + n4 + n6),), generator=g)  # rows behind n_i.n_j, n.e, n.sign(q)
    bag = torch.randint(k, (b, n1 + n2 + 2 * n3 + n4 + n5 + n6), generator=g)  # every q.n term's row
    weights = torch.rand(bag.shape, generator=g)
    draw = torch.Generator().manual_seed(1)
    heads, _ = _head_functions(setting)
    fns = {
        "MoCo-v2 head (forward + backward)": heads["MoCo-v2"],
        "SynCo head (forward + backward)": heads["SynCo"],
        "one read of the (B, K) logits (row max)": lambda: logits.amax(dim=1),
        "noise of type 4 (randn B x N4 x D)": lambda: torch.randn(b, n4, d, generator=draw),
        "sources' rows for mixup/noise/adversarial": lambda: queue.index_select(0, rows),
        "gradient rows (embedding_bag)": lambda: F.embedding_bag(bag, queue, per_sample_weights=weights, mode="sum"),
        "index draws (randint B x S')": lambda: torch.gather(hard, 1, torch.randint(n, bag.shape, generator=draw)),
    }
    times = timed_rounds(fns, args.repeats, torch.device("cpu"))
    medians = {name: statistics.median(t) for name, t in times.items()}
    moco = medians["MoCo-v2 head (forward + backward)"]
    floor_names = [name for name in fns if "head" not in name]
    floor = sum(medians[name] for name in floor_names)
    print(f"B={b} K={k} D={d} N={n} counts={setting.counts}, float32, {torch.get_num_threads()} threads, "
          f"{'malloc reuse' if reuse else 'malloc defaults'}; medians of {args.repeats} rounds in alternation")
    for name, ms in medians.items():
        print(f"  {name:<45}{ms:8.1f} ms  {ms / moco:6.3f} x MoCo-v2 head")
    print(f"  {'floor (sum of the minimal operations)':<45}{floor:8.1f} ms  {floor / moco:6.3f} x MoCo-v2 head")
    print(f"best possible SynCo / MoCo-v2 head ratio on this machine: {1 + floor / moco:.2f} "
          f"(measured now: {medians['SynCo head (forward + backward)'] / moco:.2f})")


if __name__ == "__main__":
    main()
