"""toolkit/core/buildlog.py: library output goes to the build's log file, the toolkit's lines to the terminal."""

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT

SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, warnings
    from pathlib import Path
    from toolkit.core.buildlog import captured

    with captured(Path(sys.argv[1]), verbose=sys.argv[2] == "1") as console:
        console.log("toolkit: what the toolkit does")
        os.write(2, b"[cpuinfo_utils.cpp:71] chatter from C\\n")
        print("a library printing to stdout")
        warnings.warn("torchvision is not installed")
        subprocess.run(["sh", "-c", "echo from a child process >&2"], check=True)
    print("after the build", file=sys.stderr)
""")


def run(tmp_path: Path, verbose: bool) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "logs" / "build.log"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(log), "1" if verbose else "0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result, log.read_text()


def test_library_output_goes_to_the_log_file_only(tmp_path: Path):
    result, log = run(tmp_path, verbose=False)
    assert result.stdout == "toolkit: what the toolkit does\n"
    assert result.stderr == "after the build\n"  # the terminal's stderr is back after the capture
    for line in ("toolkit: what the toolkit does", "[cpuinfo_utils.cpp:71] chatter from C", "a library printing",
                 "torchvision is not installed", "from a child process"):
        assert line in log, (line, log)


def test_verbose_shows_it_too(tmp_path: Path):
    result, log = run(tmp_path, verbose=True)
    assert result.stdout == "toolkit: what the toolkit does\n"
    for line in ("[cpuinfo_utils.cpp:71] chatter from C", "torchvision is not installed", "from a child process"):
        assert line in result.stderr and line in log
