"""A trained trial's files as a build ships them, outside a build (`toolkit.ship`): the float student's
exports that fit by estimate and the compressed student's, each checked in its runtime (parity against
its source model on real test histories, test quality through the artifact). The build's "export" and
"check" stages (toolkit/recipe/student.py `ship_planned`), and `toolkit.ship` for benchmarks that ship
many trials."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from toolkit.core.contract import ITEMS_FILE


def ship_trial(trial, profile, folder: Path, log=None, float_metrics=None, move: bool = False, step=None) -> list:
    """Write and check every file the build ships for `trial` (toolkit.recipe.student.TrialResult, its
    files already in `trial.folder`, copied, or moved with `move`) into `folder`: ArtifactRecord per file
    (path relative to `folder`). `float_metrics`: the float student's test metrics when already measured;
    `step(name)`: the recipe's timed stage ("export", then "check")."""
    import shutil

    from toolkit.planning.estimate import analytic_latency, float_precisions
    from toolkit.recipe.artifacts import (calibration_histories, check_artifacts, export_job, export_jobs,
                                          write_references)
    from toolkit.training.evaluate import cutoff_for, evaluate_model

    log = log or (lambda *_: None)
    step = step or (lambda name: contextlib.nullcontext())
    c, split = trial.trial.candidate, trial.data.split
    max_history, k = profile.serving.max_history, cutoff_for(profile.serving.top_k)
    formats = tuple(trial.measured_bytes)
    models = {"float": trial.float_model, **({"compressed": trial.model} if c.compressed else {})}
    jobs = export_jobs(c, formats, float_precisions(c, profile, split.num_items, formats))
    folder.mkdir(parents=True, exist_ok=True)
    with step("export"):  # the float student's other exports beside the trial's shipped files
        shipped = {job.name for job in trial.files}
        if Path(trial.folder).resolve() != folder.resolve():
            for job in trial.files:
                (shutil.move if move else shutil.copyfile)(trial.folder / job.name, folder / job.name)
        calibration = calibration_histories(split, max_history)
        for job in jobs:
            if job.name not in shipped:
                export_job(job, models[job.source], trial.shipping, folder / job.name, max_history, calibration)
        (folder / ITEMS_FILE).write_text(json.dumps(trial.data.item_ids, ensure_ascii=False))
    with step("check"):
        write_references(folder, models, trial.shipping, split, max_history)
        float_test = float_metrics or evaluate_model(trial.float_model, split, "test", k)
        return check_artifacts(folder, jobs, models, trial.shipping, split, profile.hardware.threads, k, float_test,
                               analytic_latency(c, profile, split.num_items, formats), log)
