"""The build's last check: every artifact profiled in its runtime (a fresh process each) against the
profile, the verdicts attached to the manifest, and the report written."""

from __future__ import annotations

from pathlib import Path

from toolkit.core.contract import REFERENCE_FILE
from toolkit.recipe.manifest import Manifest


def profile_artifacts_(build_dir: Path, profile, manifest: Manifest, log=print) -> list:
    """Profile every artifact of a build in its runtime (a fresh process each), attach the result to
    its manifest record, write report.json / report.md / plots and log the verdict table."""
    from toolkit.profiler.recommend import recommend
    from toolkit.profiler.calibrate import CalibrationCache
    from toolkit.profiler.records import ProfileRequest, Quality
    from toolkit.profiler.run import profile_artifact
    from toolkit.report.markdown import verdict_table
    from toolkit.report.write import write_report

    calibrations = CalibrationCache()
    natives = native_clients({Path(a.path).suffix.lower() for a in manifest.artifacts}, log, profile)
    results = []
    pop = manifest.popularity["test"]
    for a in manifest.artifacts:
        log(f"  profiling {a.path} against {profile.name} in a fresh process ...")
        quality = Quality(k=a.metrics.k, ndcg=a.metrics.ndcg, hr=a.metrics.hr, users=a.metrics.users,
                          undetermined=a.metrics.undetermined, float_ndcg=a.float_metrics.ndcg,
                          popularity_ndcg=pop.ndcg)
        known = ProfileRequest(precision=a.precision, source=a.source, parity_min=a.parity_min, quality=quality,
                               analytic_ms=a.analytic_ms, reference=Path(build_dir) / REFERENCE_FILE)
        a.profile = profile_artifact(Path(build_dir) / a.path, profile, calibrations, known=known,
                                     native=natives.get(Path(a.path).suffix.lower()))
        results.append(a.profile)
    manifest.recommended = recommend(results, profile.serving.formats, manifest.plan["quality_tolerance"],
                                     manifest.plan.get("unfit_formats"))
    write_report(Path(build_dir), profile, results, plan=manifest.plan, serving=manifest.serving.to_dict(),
                 recommended=manifest.recommended, warnings=manifest.warnings,
                 data=manifest.data.to_dict() if manifest.data is not None else None)
    log("\n" + verdict_table(profile, results))
    return results


def native_client(log):
    """The native C++ client of the .pte (runtime_demo/cpp), built once; None where it cannot be built."""
    try:
        from toolkit.profiler.native import native_client as build_native_client
    except ImportError:
        return None
    return build_native_client(log=log)


def native_clients(suffixes: set[str], log, profile=None) -> dict[str, object]:
    """Where each artifact suffix asked for runs, built once: ".pte" the ExecuTorch C++ client, ".onnx" the
    ONNX Runtime C API client, or for a browser profile headless Chromium with onnxruntime-web (else the
    native one); a suffix whose client cannot be had is left out (said through log)."""
    from toolkit.profiler.browser import browser_client
    from toolkit.profiler.onnx_client import onnx_client

    browser = browser_client(log) if ".onnx" in suffixes and profile is not None and profile.serving.web_runtime else None
    clients = {".pte": native_client(log) if ".pte" in suffixes else None,
               ".onnx": browser or (onnx_client(log) if ".onnx" in suffixes else None)}
    return {k: v for k, v in clients.items() if v is not None}
