"""Break the code one realistic bug at a time, run the tests meant to catch it, revert; prints one line a bug.

Run from the repository root: `.venv/bin/python scripts/mutation_check.py [INDEX ...]`. Each entry is
(bug, file, exact text, replacement, pytest selection). A line "MISSED" means no listed test noticed the bug.
The file is restored after each run, also on Ctrl-C.
"""
import subprocess
import sys
from pathlib import Path

MUTATIONS = [
 ("strategy masses at a fixed temperature", "synco/analysis/negatives.py",
  "logits = torch.cat([positive.unsqueeze(1), queue_logits, synthetic_logits], dim=1).to(dtype) / temperature",
  "logits = torch.cat([positive.unsqueeze(1), queue_logits, synthetic_logits], dim=1).to(dtype) / 0.2",
  "tests/analysis/test_analysis.py::test_strategy_statistics_against_a_float64_loop"),
 ("masses relative to all logits incl. the positive", "synco/analysis/negatives.py",
  "negative_mass = 1 - probabilities[:, 0]  # (B,)", "negative_mass = 1 + 0 * probabilities[:, 0]  # (B,)",
  "tests/analysis/test_analysis.py::test_strategy_statistics_against_a_float64_loop"),
 ("random queue rows get the last image's label", "synco/analysis/log.py",
  "queue_labels = torch.where(queue_rows >= 0, labels[queue_rows.clamp(min=0)], torch.full_like(queue_rows, -1))",
  "queue_labels = labels[queue_rows]",
  "tests/analysis/test_analysis.py::test_negative_log_ignores_the_queues_random_initial_rows"),
 ("effective rank without centring", "synco/analysis/representation.py",
  "torch.linalg.svdvals(x - x.mean(dim=0, keepdim=True))", "torch.linalg.svdvals(x)",
  "tests/analysis/test_analysis.py::test_effective_rank_of_a_hand_made_matrix"),
 ("intra-class mean over n^2 pairs (diagonal counted)", "synco/analysis/representation.py",
  "intra = distances[inside][:, inside].sum() / (n * (n - 1))", "intra = distances[inside][:, inside].sum() / (n * n)",
  "tests/analysis/test_analysis.py::test_class_distance_ratios_against_a_float64_loop"),
 ("kNN without L2 normalisation of the bank", "synco/eval/knn.py",
  "bank = F.normalize(train_features.float(), dim=1)  # (M, F)", "bank = train_features.float()  # (M, F)",
  "tests/eval/test_knn.py tests/engine/test_pretrain.py::test_zero_epochs_evaluates_the_untrained_encoder"),
 ("kNN chunks restart at the first test row", "synco/eval/knn.py",
  "labels = test_labels[start : start + chunk].unsqueeze(1)", "labels = test_labels[0 : chunk][: len(ranked)].unsqueeze(1)",
  "tests/eval/test_knn.py"),
 ("synco knn normalises with the bank's statistics", "synco/eval/protocols/knn.py",
  "mean, std = run_normalisation(state, cfg, train)  # before the subset: the pretraining images'\n",
  "from synco.data.loaders import normalisation\n    mean, std = normalisation(train.head(cfg.eval.train_subset))\n",
  "tests/eval/test_linear.py::test_synco_knn_reproduces_the_runs_own_final_knn"),
 ("same-image mask not passed to the synthesis", "synco/methods/moco.py",
  "arguments = dict(generator=generator, queue_logits=raw_logits, exclude=source_exclude)",
  "arguments = dict(generator=generator, queue_logits=raw_logits, exclude=None)",
  "tests/methods/test_moco.py::test_same_image_masking_with_synthesis_never_uses_own_keys_as_sources"),
 ("MoCHI s and s' swapped", "synco/methods/moco.py",
  "mochi(num_hard=neg.num_hard, num_mix=neg.num_mixup, num_query_mix=neg.num_interpolate)",
  "mochi(num_hard=neg.num_hard, num_mix=neg.num_interpolate, num_query_mix=neg.num_mixup)",
  "tests/methods/test_moco.py::test_mochi_recipe_maps_s_and_s_prime_to_mixup_and_query_mixes"),
 ("synthetic logits at half weight in the loss", "synco/methods/moco.py",
  "loss = self.criterion(query, key, queue_logits, synthetic_logits)",
  "loss = self.criterion(query, key, queue_logits, synthetic_logits * 0.5)",
  "tests/methods/test_moco.py::test_synco_step_equals_info_nce_over_queue_and_its_synthetic_negatives"),
 ("delta and eta swapped (vectors)", "synco/negatives/module.py",
  "pieces.append(synthesize.perturb(q, source, self.delta))", "pieces.append(synthesize.perturb(q, source, self.eta))",
  "tests/negatives/test_synthetic_negatives.py::test_perturbed_and_adversarial_negatives_of_a_hand_made_case"),
 ("perturbation step dropped on the dot path", "synco/negatives/dot_logits.py",
  "pieces.append(two_term(4, delta, 1.0))", "pieces.append(two_term(4, 0.0, 1.0))",
  "tests/negatives/test_dot_logits.py::test_bfloat16_against_the_float64_reference_of_the_same_draws"),
 ("wrong sign of the adversarial cross term in the norm", "synco/negatives/dot_logits.py",
  "sq = nn[5] + 2 * eta * _row_dots(", "sq = nn[5] - 2 * eta * _row_dots(",
  "tests/negatives/test_dot_logits.py::test_bfloat16_against_the_float64_reference_of_the_same_draws"),
 ("row dots: second chunk reads the wrong queries", "synco/negatives/dot_logits.py",
  "rows = queue.index_select(0, index[start:start + step].reshape(-1))  # (b*M, D)",
  "rows = queue.index_select(0, index[start // 2:start // 2 + min(step, batch - start)].reshape(-1))  # (b*M, D)",
  "tests/negatives/test_dot_logits.py -k beyond"),
 ("pair dots: second chunk reads the wrong queries", "synco/negatives/dot_logits.py",
  "a = queue.index_select(0, first[start:start + step].reshape(-1))  # (b*M, D)",
  "a = queue.index_select(0, first[start // 2:start // 2 + min(step, batch - start)].reshape(-1))  # (b*M, D)",
  "tests/negatives/test_dot_logits.py -k beyond"),
 ("selection keeps rows with N - 1 candidates", "synco/negatives/select.py",
  "redo = ((counts < num_hard) | (counts > width))", "redo = ((counts < num_hard - 1) | (counts > width))",
  "tests/negatives/test_select.py -k boundaries"),
 ("selection keeps rows with 8N + 1 candidates", "synco/negatives/select.py",
  "redo = ((counts < num_hard) | (counts > width))", "redo = ((counts < num_hard) | (counts > width + 1))",
  "tests/negatives/test_select.py -k boundaries"),
 ("checkpoint written in place", "synco/engine/checkpoint.py",
  'tmp = path.with_name(path.name + ".tmp")', "tmp = path", "tests/engine/test_checkpoint.py"),
 # State across a resume or a process boundary; schedules; masks and splits at their edges; losses' inputs.
 ("MoCo-v2+'s momentum computed but not applied", "synco/methods/moco.py",
  'self.momentum_update(out.get("momentum"))', "self.momentum_update()",
  "tests/methods/test_momentum_schedule.py"),
 ("the learning-rate schedule restarts after a resume", "synco/engine/fit.py",
  'trainee.scheduler.load_state_dict(state["scheduler"])', "pass",
  "tests/engine/test_resume_state.py -k stop_after"),
 ("train.stop_after counts from epoch 0, not from the resume point", "synco/engine/fit.py",
  "min(epochs, start.epoch + train_cfg.stop_after)", "min(epochs, train_cfg.stop_after)",
  "tests/engine/test_resume_state.py -k stop_after"),
 ("every rank draws the same augmentations and synthetic negatives", "synco/engine/rng.py",
  "manual_seed(seed + 2 + 1000 * rank)", "manual_seed(seed + 2)",
  "tests/engine/test_resume_state.py -k rank"),
 ("a mid-epoch resume draws the epoch's order from the wrong stream state", "synco/engine/fit.py",
  "generators.data.set_state(start.data_rng)", "pass",
  "tests/engine/test_preemption.py -k mid_epoch"),
 ("a mid-epoch resume restarts the epoch's loss sum", "synco/engine/fit.py",
  "start.epoch_loss_sum if first_step else 0.0", "0.0",
  "tests/engine/test_preemption.py -k mid_epoch"),
 ("a stop signal is ignored by the loop", "synco/engine/fit.py",
  "stop_signal = STOP.agreed(fabric)  # collective", "stop_signal = None  # collective",
  "tests/engine/test_preemption.py -k last_step"),
 ("a second writer of a run directory is not refused", "synco/engine/run_lock.py",
  "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", "pass",
  "tests/engine/test_run_lock.py"),
 ("class 0 treated as an unknown class in the label-aware mask", "synco/memory/queue.py",
  "& (self.labels >= 0).unsqueeze(0)", "& (self.labels > 0).unsqueeze(0)",
  "tests/memory/test_queue.py"),
 ("uneven data shards lose their remainder", "synco/continual/tasks.py",
  "order.tensor_split(num_tasks)", "order[: len(order) // num_tasks * num_tasks].tensor_split(num_tasks)",
  "tests/continual/test_metrics_and_tasks.py"),
 ("pnr_simclr_loss on raw outputs without normalising", "synco/functional/continual.py",
  "z, zb, p = (F.normalize(x.to(dtype), dim=1) for x in (z, zb, p))", "z, zb, p = (x.to(dtype) for x in (z, zb, p))",
  "tests/functional/test_loss_inputs.py"),
 ("a subset larger than the data set silently means all of it", "synco/engine/inputs.py",
  "if count is not None and count > len(data):", "if False:",
  "tests/data/test_datasets.py -k subset"),
 ("the synthesis schedule ignores its stop epoch", "synco/negatives/schedule.py",
  "return epoch >= self.warmup_epochs and (self.stop_epoch is None or epoch < self.stop_epoch)",
  "return epoch >= self.warmup_epochs",
  "tests/methods/test_synthesis_schedule.py -k warm_up"),
]
only = sys.argv[1:]
for i, (name, f, old, new, tests) in enumerate(MUTATIONS):
    if only and str(i) not in only:
        continue
    p = Path(f); src = p.read_text()
    assert src.count(old) == 1, (name, src.count(old))
    p.write_text(src.replace(old, new))
    try:
        r = subprocess.run(f".venv/bin/python -m pytest -q -x -p no:cacheprovider {tests}", shell=True,
                           capture_output=True, text=True, timeout=900)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
        print(f"{i:2d} {'CAUGHT' if r.returncode else 'MISSED'} | {name} | {tests} | {last}", flush=True)
    finally:
        p.write_text(src)
