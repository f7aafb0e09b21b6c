"""Serve the web client and one build on 127.0.0.1, as a static site would:

    python runtime_demo/web/serve.py --build builds/mobile-arm [--port 8000]
    # then open http://127.0.0.1:8000/?model=build/model.int8.onnx

/ is this folder (index.html, recommend.mjs, node_modules/onnxruntime-web/dist/ after
`npm install --ignore-scripts`); /build/ is the build folder (its files only, nothing below it).
/build/titles.json (item id -> title) is made from the build's dataset when that has titles
(MovieLens-100K does; a build's own file has none, and the page then shows ids, without a warning).
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

WEB_DIR = Path(__file__).resolve().parent
BUILD_PREFIX = "/build/"
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".onnx": "application/octet-stream"}


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def __init__(self, *args, build: Path, titles: bytes | None, **kwargs):
        self.build, self.titles = build, titles
        super().__init__(*args, directory=str(WEB_DIR), **kwargs)

    def translate_path(self, path: str) -> str:
        route = unquote(urlsplit(path).path)
        if route.startswith(BUILD_PREFIX):
            name = route[len(BUILD_PREFIX):]
            if name and "/" not in name and name not in (".", ".."):
                return str(self.build / name)
            return str(WEB_DIR / "no-such-file")  # only the build's own files: 404
        return super().translate_path(path)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == BUILD_PREFIX + "titles.json" and self.titles is not None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.titles)))
            self.end_headers()
            self.wfile.write(self.titles)
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # quiet: errors only
        if args and str(args[1])[:1] in "45":
            super().log_message(format, *args)


def build_titles(build: Path) -> bytes | None:
    """titles.json for the build's dataset when it has titles, or None (ids only, then); a warning only
    when the data has titles and they cannot be read."""
    sys.path.insert(0, str(WEB_DIR.parent.parent))
    try:
        from runtime_demo.histories import has_titles, load_build_dataset
        from runtime_demo.recommend import read_manifest
        from toolkit.core.errors import ToolkitError

        try:
            manifest = read_manifest(build)
            if not has_titles(manifest):
                return None
            return json.dumps(load_build_dataset(manifest).titles).encode()
        except ToolkitError as e:
            print(f"warning: no titles ({e})", file=sys.stderr)
            return None
    finally:
        sys.path.pop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the web client and a build on 127.0.0.1.")
    parser.add_argument("--build", required=True, type=Path, help="a build folder (items.json next to the .onnx files)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free one; default 8000)")
    args = parser.parse_args(argv)
    if not (args.build / "items.json").is_file():
        print(f"error: --build {args.build}: no items.json (not a build folder)", file=sys.stderr)
        return 2
    if not (WEB_DIR / "node_modules" / "onnxruntime-web").is_dir():
        print(f"error: onnxruntime-web is not installed: run `npm install --ignore-scripts` in {WEB_DIR}", file=sys.stderr)
        return 2
    handler = functools.partial(Handler, build=args.build.resolve(), titles=build_titles(args.build))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as e:
        print(f"error: --port {args.port}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"serving http://127.0.0.1:{server.server_address[1]}/?model=build/model.int8.onnx", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
