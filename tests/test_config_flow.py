"""Every config field reaches the code it configures: non-default α, T and epochs set through
`BuildConfig` are what the build's distillations and fine-tunes ran with, and what its manifest says."""

from __future__ import annotations

import json
from dataclasses import replace

from conftest import ROOT


def test_non_default_student_settings_reach_every_distillation_and_the_manifest(cache_dir, tmp_path, monkeypatch):
    import toolkit
    import toolkit.training.distill as distillation
    from toolkit import BuildConfig, DistillConfig, StudentConfig, TrainConfig

    profile = tmp_path / "onnx-only.toml"  # one format: half the exports and profiling
    profile.write_text((ROOT / "device_profiles" / "mobile-arm.toml").read_text()
                       .replace('name = "mobile-arm"', 'name = "onnx-only"')
                       .replace('formats     = ["executorch", "onnx"]', 'formats     = ["onnx"]'))
    calls = []
    real = distillation.distill

    def spy(teacher, student_cfg, split, train_cfg, distill_cfg, *args, **kwargs):
        calls.append((kwargs.get("desc", ""), distill_cfg, train_cfg))
        return real(teacher, student_cfg, split, train_cfg, distill_cfg, *args, **kwargs)

    monkeypatch.setattr(distillation, "distill", spy)
    cfg = BuildConfig(profile=str(profile), out=tmp_path / "build", max_users=150)
    cfg = cfg.with_epochs(2)
    cfg = replace(cfg, teacher=replace(cfg.teacher, members=1, dim=16),
                  plan=replace(cfg.plan, dims=(16,), max_trials_binding=1),
                  student=StudentConfig(dropout=0.1, train=TrainConfig(epochs=2, patience=1, lr=3e-3),
                                        distill=DistillConfig(alpha=0.3, temperature=2.0, top_k=32)))
    result = toolkit.build(cfg, log=lambda *_: None)

    assert calls, "the build distilled nothing"
    assert {(c.alpha, c.temperature, c.top_k) for _, c, _ in calls} == {(0.3, 2.0, 32)}  # trials and fine-tunes
    plan_calls = [t for desc, _, t in calls if desc.startswith("plan ")]
    assert plan_calls and all(t.epochs == 2 and t.patience == 1 and t.lr == 3e-3 for t in plan_calls)
    manifest = json.loads((result.out / "manifest.json").read_text())
    student = manifest["student"]
    assert student["distill"]["alpha"] == 0.3 and student["distill"]["temperature"] == 2.0
    assert student["train"]["epochs"] == 2 and student["train"]["lr"] == 3e-3 and student["dropout"] == 0.1
    assert student["epochs"] <= 2 and student["config"]["dropout"] == 0.1  # the model that ran
    assert manifest["teacher"]["config"]["train"]["epochs"] == 2
    assert manifest["plan"]["candidate"]["dim"] == 16
