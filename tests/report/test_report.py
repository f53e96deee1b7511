"""synco report: the files exist and the table matches metrics.jsonl (and the protocols' results)."""

import pytest

from synco.engine.metrics import read_metrics


@pytest.mark.slow
def test_report_of_three_runs_with_two_seeds(tmp_path):
    from tiny_runs import tiny

    from synco.pipelines.pretrain import pretrain
    from synco.eval.protocols.linear import run_linear
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
    assert rows["synco_s1"].split(" | ")[2] == "none"  # self-supervised: no labels in pretraining
    assert f"{knn:.2f}" in rows["synco_s1"].split(" | ")[4]
    linear = read_metrics(tmp_path / "synco_s0" / "linear" / "metrics.jsonl")[-1]["linear/top1_mean"]
    assert f"{linear:.2f}" in rows["synco_s0"].split(" | ")[6]
    assert "synco: mean of 2" in rows and "+-" in rows["synco: mean of 2"]
    assert not any(key.startswith("moco: mean") for key in rows)  # one seed: no mean row
    assert "moco_v2" in rows["moco"]


def test_report_refuses_a_folder_without_metrics(tmp_path):
    from synco.report import write_report

    with pytest.raises(FileNotFoundError, match="is .* a synco run directory"):
        write_report([tmp_path], tmp_path / "out")


def test_difference_table_by_hand(tmp_path):
    import json

    from synco.report import Run, difference_table

    knn = {"moco_v2_s0": 40.0, "moco_v2_s1": 42.0, "synco_s0": 43.0, "synco_s1": 45.0, "mochi_s0": 41.0,
           "mochi_s1": 41.4}
    runs = []
    for name, top1 in knn.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "eval/knn_top1": top1}) + "\n")
        runs.append(Run(tmp_path / name))
    rows = {row[0]: row for row in difference_table(runs)}
    # synco - moco_v2 = +3; SE = sqrt(2/2 + 2/2) = 1.414 (sample variances 2 and 2); 3 / 1.414 = 2.1
    assert rows["synco"][2] == "+3.00 +- 1.41 (2.1, beyond 2 SE)"
    # mochi - moco_v2 = +0.2; SE = sqrt(0.08/2 + 2/2) = 1.02
    assert rows["mochi"][2] == "+0.20 +- 1.02 (0.2, within 2 SE)"
    assert rows["synco"][3] == "-"  # no linear probe results
    assert "moco_v2" not in rows and difference_table(runs[2:], reference="moco_v2") == []


def test_fine_tuning_columns_follow_the_results_beside_the_runs(tmp_path):
    import json

    from synco.report import Run
    from synco.report.tables import final_columns, final_table, finetune_label

    assert finetune_label("1pct") == "1 % labels top-1 %"
    assert finetune_label("5shot_schane") == "5-shot CE+SCHaNe top-1 %"
    assert finetune_label("10pct_supcon") == "10 % labels CE+SupCon top-1 %"
    run_dir = tmp_path / "supcon_s0"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "eval/knn_top1": 50.0, "train/uses_labels": True}))
    for tag, top1 in (("5shot_schane", 31.5), ("1pct", 40.25), ("100pct_schane", 70.0)):
        (run_dir / f"finetune_{tag}").mkdir()
        (run_dir / f"finetune_{tag}" / "metrics.jsonl").write_text(json.dumps({"finetune/top1_mean": top1}))
    run = Run(run_dir)
    keys = [key for key, _ in final_columns([run]) if key.startswith("finetune_")]
    assert keys == ["finetune_1pct/top1_mean", "finetune_10pct/top1_mean", "finetune_100pct_schane/top1_mean",
                    "finetune_5shot_schane/top1_mean"]
    header, row = final_table([run])
    assert row[2] == "labels" and row[header.index("5-shot CE+SCHaNe top-1 %")] == "31.50"
    assert row[header.index("10 % labels top-1 %")] == "-"


def test_continual_streams_get_their_heat_map_and_columns(tmp_path):
    import json

    from synco.report import write_report

    for name, matrix in (("finetune_s0", [[80.0, 10.0], [40.0, 85.0]]), ("pnr_s0", [[80.0, 12.0], [60.0, 82.0]])):
        (tmp_path / name).mkdir()
        record = {"task": None, "finished": True, "continual/R_matrix": matrix,
                  "continual/average_accuracy": sum(matrix[1]) / 2, "continual/average_forgetting": 80 - matrix[1][0]}
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    page = write_report([tmp_path / "finetune_s0", tmp_path / "pnr_s0"], tmp_path / "report").read_text()
    assert (tmp_path / "report" / "continual_R.png").stat().st_size > 1000
    assert (tmp_path / "report" / "continual_curves.png").stat().st_size > 1000
    row = next(line for line in page.splitlines() if line.startswith("| pnr_s0"))
    assert "71.00" in row and "20.00" in row  # average accuracy (60 + 82) / 2 and forgetting 80 - 60
