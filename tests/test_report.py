"""synco report: the files exist and the table matches metrics.jsonl (and the protocols' results)."""

import pytest

from synco.engine.metrics import read_metrics


@pytest.mark.slow
def test_report_of_three_runs_with_two_seeds(tmp_path):
    from test_pretrain import tiny

    from synco.engine.linear import run_linear
    from synco.engine.pretrain import pretrain
    from synco.report import write_report

    runs = {
        "synco_s0": ["train.seed=0"],
        "synco_s1": ["train.seed=1"],
        "moco": ["method.name=moco_v2"],
    }
    for name, extra in runs.items():
        pretrain(tiny(tmp_path / name, "train.epochs=2", "eval.baselines=false", "eval.analysis_every=2",
                      "eval.every_epochs=1", *extra))
    run_linear(tmp_path / "synco_s0", overrides=["linear.epochs=2"])
    page = write_report([tmp_path / n for n in runs], tmp_path / "report")
    text = page.read_text()
    for figure in ("knn.png", "loss.png", "proxy.png", "false_negatives.png", "hardness.png", "align_uniform.png",
                   "class_concentration.png", "strategies.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 1000 and f"]({figure})" in text
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    knn = read_metrics(tmp_path / "synco_s1" / "metrics.jsonl")[-1]["eval/knn_top1"]
    assert f"{knn:.2f}" in rows["synco_s1"].split(" | ")[3]
    linear = read_metrics(tmp_path / "synco_s0" / "linear" / "metrics.jsonl")[-1]["linear/top1_mean"]
    assert f"{linear:.2f}" in rows["synco_s0"].split(" | ")[5]
    assert "synco: mean of 2" in rows and "+-" in rows["synco: mean of 2"]
    assert not any(key.startswith("moco: mean") for key in rows)  # one seed: no mean row
    assert "moco_v2" in rows["moco"]


def test_report_refuses_a_folder_without_metrics(tmp_path):
    from synco.report import write_report

    with pytest.raises(FileNotFoundError, match="is .* a synco run directory"):
        write_report([tmp_path], tmp_path / "out")
