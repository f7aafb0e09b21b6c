"""A browser profile's download: the model's file and onnxruntime-web's files as a web server sends
them (gzip), measured from the installed package (runtime_demo/web)."""

from __future__ import annotations

from pathlib import Path

from toolkit.core.profiles import DeviceProfile
from toolkit.profiler.records import Download

# the files runtime_demo/web/index.html makes the browser fetch besides the model: onnxruntime-web's
# wasm-only bundle, its wasm loader and the SIMD wasm binary (the single-threaded page loads the same ones)
WEB_RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime_demo" / "web" / "node_modules" / "onnxruntime-web" / "dist"
WEB_RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEB_GZIP_LEVEL = 6  # what a web server's Content-Encoding: gzip sends (nginx's and Python's default level)


def web_download(model_bytes: int, profile: DeviceProfile) -> Download | None:
    """A browser profile's download: the model, and onnxruntime-web's files as a server sends them (gzip),
    measured from the installed package (runtime_demo/web: npm install); None for an app's profile."""
    import gzip

    mode = profile.serving.web_runtime
    if not mode:
        return None
    files = {name: WEB_RUNTIME_DIR / name for name in WEB_RUNTIME_FILES}
    if not all(p.is_file() for p in files.values()):
        return Download(mode, model_bytes, None, f"onnxruntime-web is not installed ({WEB_RUNTIME_DIR}: run npm "
                                                 "install in runtime_demo/web)")
    sizes = {name: len(gzip.compress(p.read_bytes(), WEB_GZIP_LEVEL)) for name, p in files.items()}
    runtime = sum(sizes.values())
    return Download(mode, model_bytes, runtime, runtime_files_gzip_bytes=sizes, how=(
        f"onnxruntime-web's {', '.join(WEB_RUNTIME_FILES)}: {runtime:,} B gzip (level {WEB_GZIP_LEVEL}); "
        + ("counted in the download budget with the model" if mode == "counted" else
           "not counted: the profile says the browser has it cached (serving.web_runtime = \"cached\"); a first "
           "visit downloads it too")))
