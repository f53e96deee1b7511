"""The claim runners' decisions (benchmarks/claims.py, continual_claim.py, schane_claim.py) on fabricated results.

The runners train for hours; what they decide from finished runs (the verdict rule, the continual stream, the
SCHaNe settings, the report) is checked here on small metrics files written by the test.
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import claims  # noqa: E402
import continual_claim  # noqa: E402
import schane_claim  # noqa: E402


def write_records(path: Path, *records: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_verdict_rule_is_twice_the_larger_seed_spread():
    # sd of [1, 2, 3] is 1: band 2.
    assert claims.verdict([4.1, 5.1, 6.1], [1.0, 2.0, 3.0]) == pytest.approx(("shown", 3.1, 2.0))
    assert claims.verdict([1.0, 2.0, 3.0], [4.1, 5.1, 6.1])[0] == "reversed"
    verdict, difference, band = claims.verdict([2.9, 3.9, 4.9], [1.0, 2.0, 3.0])
    assert verdict == "not shown" and difference == pytest.approx(1.9) and band == pytest.approx(2.0)
    # The larger spread sets the band.
    assert claims.verdict([10.0, 10.0, 10.0], [0.0, 5.0, 10.0])[2] == pytest.approx(10.0)


def continual_record(forgetting: float, plasticity: float = 80.0, linear_all: float = 50.0) -> dict:
    return {"finished": True, "task": None, "continual/average_forgetting": forgetting,
            "continual/average_accuracy": 80.0, "continual/R_matrix": [[plasticity, 0.0], [0.0, plasticity]],
            "continual/linear_all_classes": linear_all, "continual/linear_average_forgetting": 1.0}


@pytest.fixture
def continual_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(continual_claim, "FOLDER", tmp_path)
    return tmp_path


def search_results(folder: Path, **forgetting: float) -> None:
    for stream, value in forgetting.items():
        write_records(folder / "runs" / stream / "finetune_s0", continual_record(value))


def test_the_search_is_open_until_every_stream_finished_or_one_forgets_enough(continual_folder):
    search_results(continual_folder, n2000_e20=0.3, n2000_e60=0.4)
    assert continual_claim.chosen_stream(2.0) is None
    search_results(continual_folder, n2000_e20=0.3, n2000_e60=2.5)
    assert continual_claim.chosen_stream(2.0) == "n2000_e60"


def test_without_enough_forgetting_near_ties_go_to_the_cheapest_stream(continual_folder):
    search_results(continual_folder, n2000_e20=0.27, n2000_e60=0.30, n10000_e20=0.45)
    assert continual_claim.chosen_stream(2.0) == "n2000_e20"  # 0.45 - 0.27 < TIE
    search_results(continual_folder, n2000_e20=0.27, n2000_e60=0.30, n10000_e20=0.9)
    assert continual_claim.chosen_stream(2.0) == "n10000_e20"


def test_the_continual_report_gives_verdicts_once_every_seed_is_in(continual_folder):
    forgetting = {"finetune": (3.0, 3.2, 3.1), "cassle": (1.0, 1.1, 0.9), "pnr": (0.5, 0.6, 0.4),
                  "pnr_plasticity_only": (1.0,) * 3, "pnr_stability_only": (1.0,) * 3}
    for arm, values in forgetting.items():
        for seed, value in zip(continual_claim.SEEDS, values):
            linear_all = 60.0 + seed if arm == "pnr" else 50.0 + seed
            write_records(continual_folder / "runs" / "n2000_e20" / f"{arm}_s{seed}",
                          continual_record(value, linear_all=linear_all))
    text = continual_claim.report("n2000_e20")
    assert "| pnr forgets less than finetune | forgetting | +2.60 | 0.20 | **shown** |" in text
    assert "| pnr forgets less than cassle | forgetting | +0.50 | 0.20 | **shown** |" in text
    assert "| pnr above cassle (secondary) | linear all | +10.00 | 2.00 | shown |" in text
    assert "Fine-tuning forgets 3.10 +- 0.10 points, more than three times its seed spread" in text


@pytest.fixture
def schane_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(schane_claim, "FOLDER", tmp_path)
    return tmp_path


def finetune_result(folder: Path, budget: str, arm: str, setting: dict, lr: float, val: float) -> None:
    write_records(folder / "runs" / budget / schane_claim.cell_name(arm, setting, lr, 0),
                  {"seed": 0, "finetune/val_top1": val, "finetune/best_epoch": 3, "finetune/top1": val},
                  {"finetune/top1_mean": val})


def test_schane_selection_takes_the_best_validation_setting_only_once_its_grid_is_done(schane_folder):
    settings = schane_claim.ARMS["schane"]
    lrs = schane_claim.LRS
    for i, setting in enumerate(settings):
        for j, lr in enumerate(lrs):
            if (i, j) != (1, 3):
                finetune_result(schane_folder, "1shot", "schane", setting, lr, val=10.0 + 4 * i + j)
    assert schane_claim.selected("1shot", "schane") is None  # one cell of the grid missing
    finetune_result(schane_folder, "1shot", "schane", settings[1], lrs[3], val=10.0 + 4 + 2)  # ties the best, (1, 2)
    assert schane_claim.selected("1shot", "schane") == (settings[1], lrs[2])  # the first in grid order
    # The finals (seeds 1 and 2) join the run list at the choice.
    finals = [c for c in schane_claim.cells() if c[4] != 0]
    assert finals == [("1shot", "schane", settings[1], lrs[2], 1), ("1shot", "schane", settings[1], lrs[2], 2)]
    # ... right after their budget's grid, before the next budget's grid.
    order = schane_claim.cells()
    assert order.index(finals[-1]) < order.index(next(c for c in order if c[0] == "5shot"))


def test_a_schane_cell_gives_the_classifier_ce_s_step():
    args = schane_claim.overrides("1shot", {"finetune.loss": "schane", "finetune.contrastive_weight": 0.9}, 0.03, 1)
    assert "finetune.classifier_lr=0.3" in args and "finetune.lr=0.03" in args
    assert not any(a.startswith("finetune.classifier_lr") for a in schane_claim.overrides("1shot", {}, 0.03, 1))


def test_a_named_encoder_without_a_checkpoint_stops_with_one_line(tmp_path):
    with pytest.raises(SystemExit, match="has no checkpoint on this machine"):
        schane_claim.encoder_at_hand(tmp_path / "run", named=True)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert schane_claim.encoder_at_hand(tmp_path / "run", named=True) == tmp_path / "run"


def test_the_default_encoder_is_trained_here_once_pinned_and_then_reused(tmp_path, monkeypatch):
    own, pinned = tmp_path / "encoder", tmp_path / "encoder.ckpt"
    monkeypatch.setattr(schane_claim, "OWN_ENCODER", own)
    monkeypatch.setattr(schane_claim, "PINNED_ENCODER", pinned)
    calls, stale, pins = [], [], []
    monkeypatch.setattr(schane_claim, "pin", lambda run_dir: pins.append(run_dir) or run_dir)

    def fake_pretrain(claim, arm, seed, run_dir):
        calls.append((claim.folder, arm.name, seed, run_dir))
        stale.append((run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").is_dir())
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_records(run_dir, {"epoch": 30, "finished": True})

    monkeypatch.setattr(schane_claim, "pretrain_cell", fake_pretrain)
    # metrics.jsonl without a checkpoint: committed from another machine, so it is trained again here.
    write_records(own, {"epoch": 30, "finished": True})
    assert schane_claim.encoder_at_hand(tmp_path / "absent", named=False) == own
    assert calls == [("reports/claims/synco_cifar10", "synco", 0, own)] and stale == [False]
    assert schane_claim.encoder_at_hand(tmp_path / "absent", named=False) == own
    assert len(calls) == 1  # finished with its checkpoint: reused
    # A checkpoint of an unfinished run is continued (the same call, which resumes).
    write_records(own, {"epoch": 12})
    schane_claim.encoder_at_hand(tmp_path / "absent", named=False)
    assert len(calls) == 2
    assert pins == [own, own, own]  # every encoder that the default found or trained is pinned
    # Once pinned (committed), the copy is what every later run fine-tunes, here or on another machine.
    pinned.write_bytes(b"weights")
    write_records(own, {"epoch": 3})
    assert schane_claim.encoder_at_hand(tmp_path / "absent", named=False) == pinned
    assert len(calls) == 2 and len(pins) == 3
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert schane_claim.encoder_at_hand(tmp_path / "run", named=True) == tmp_path / "run"  # a named one wins


def test_most_in_few_shot_needs_every_k_shot_difference_above_every_larger_budget_one():
    assert schane_claim.most_in_few_shot({"1shot": 1.5, "5shot": 2.6}) is None  # larger budgets not in yet
    assert schane_claim.most_in_few_shot({"1shot": 1.5, "5shot": 2.6, "10pct": -1.0, "all": 0.2}) is True
    # One k-shot difference at or below one larger-budget difference: not "most in few-shot".
    assert schane_claim.most_in_few_shot({"1shot": 1.5, "5shot": 2.6, "10pct": -1.0, "all": 1.5}) is False
    assert schane_claim.most_in_few_shot({"1shot": -3.0, "5shot": 2.6, "10pct": -1.0, "all": 0.2}) is False
