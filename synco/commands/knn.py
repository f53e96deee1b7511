"""``synco knn RUN``: weighted kNN on the frozen encoder of a run, its settings recorded."""

from __future__ import annotations

from synco.commands.common import add_run_arguments, run_protocol


def add_parser(sub) -> None:
    p = sub.add_parser("knn", help="weighted kNN on the frozen encoder of a run (settings recorded)")
    add_run_arguments(p, "KEY=VALUE, e.g. eval.knn_k=20 eval.feature=embedding")


def run(args) -> int:
    from synco.eval.protocols.knn import run_knn

    return run_protocol(run_knn, args, lambda r: (
        f"kNN (k={r['eval/knn_k']}, t={r['eval/knn_temperature']}, {r['eval/knn_feature']} features, cosine; "
        f"bank {r['eval/bank_size']}, test {r['eval/test_size']}): top-1 {r['eval/knn_top1']:.2f} %, "
        f"top-5 {r['eval/knn_top5']:.2f} %"))
