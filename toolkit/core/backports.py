"""The Debian backports suite of this machine's own package archive (standard library only).

Two tools the toolkit uses come newer from backports than from the release: qemu-user >= 8.2.3
(Debian 12's 7.2 miscomputes SME's SMOPA, QEMU #2083) for `toolkit verify`. The backports suite
lives on the same archive the machine already installs from, so its source is derived from the
machine's own apt sources (the `URIs:` field of the deb822 file, or a one-line `sources.list`
entry) rather than written out: the project names no archive host.

    python3 toolkit/core/backports.py            # print the deb822 source for <codename>-backports
    python3 toolkit/core/backports.py --write    # write it to /etc/apt/sources.list.d/ (root)
    python3 toolkit/core/backports.py --suite trixie   # another suite of the same archive, one line

It runs before the toolkit is installed (CI's first step), hence no third-party imports.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

SOURCES_DIR = Path("/etc/apt/sources.list.d")
LEGACY_LIST = Path("/etc/apt/sources.list")
OS_RELEASE = Path("/etc/os-release")
TARGET = SOURCES_DIR / "edge-rec-backports.sources"
OLD_TARGET = SOURCES_DIR / "edge-rec-backports.list"  # what earlier versions wrote (a host name spelt out)


class BackportsError(Exception):
    """The machine's apt sources name no Debian archive for its release."""


@dataclass
class Archive:
    uri: str  # e.g. what the release's own `URIs:` field holds
    signed_by: str  # "" when the source names no keyring
    codename: str  # e.g. bookworm

    def backports(self) -> str:
        """The deb822 stanza of `<codename>-backports` on the same archive, same keyring."""
        return self.source(f"{self.codename}-backports")

    def source(self, suite: str) -> str:
        """The deb822 stanza of `suite` (main) on the same archive, same keyring."""
        lines = ["Types: deb", f"URIs: {self.uri}", f"Suites: {suite}", "Components: main"]
        if self.signed_by:
            lines.append(f"Signed-By: {self.signed_by}")
        return "\n".join(lines) + "\n"

    def one_line(self, suite: str) -> str:
        """The same as a one-line `sources.list` entry (for apt's Dir::Etc::sourcelist)."""
        options = f"[signed-by={self.signed_by}] " if self.signed_by else ""
        return f"deb {options}{self.uri} {suite} main\n"


def codename(os_release: Path = OS_RELEASE) -> str:
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME" and value.strip().strip('"'):
            return value.strip().strip('"')
    raise BackportsError(f"{os_release}: no VERSION_CODENAME (is this Debian?)")


def deb822_stanzas(text: str) -> list[dict[str, str]]:
    """The stanzas of a deb822 .sources file: field -> value (comments dropped, continuations joined)."""
    stanzas, current, last = [], {}, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, last = {}, None
        elif raw[0] in " \t" and last is not None:
            current[last] += " " + raw.strip()
        elif ":" in raw:
            key, _, value = raw.partition(":")
            last = key.strip().lower()
            current[last] = value.strip()
    return stanzas


def release_archive(release: str, sources_dir: Path = SOURCES_DIR, legacy: Path = LEGACY_LIST) -> Archive:
    """The archive that serves `release` itself (not -security, not -updates) on this machine."""
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for s in deb822_stanzas(path.read_text()):
            if s.get("enabled", "yes").lower() == "no" or "deb" not in s.get("types", "").split():
                continue
            if release in s.get("suites", "").split() and s.get("uris"):
                return Archive(uri=s["uris"].split()[0], signed_by=s.get("signed-by", ""), codename=release)
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            options = ""
            if words and words[0].startswith("["):
                end = next((i for i, w in enumerate(words) if w.endswith("]")), None)
                if end is None:
                    continue
                options, words = " ".join(words[:end + 1]).strip("[]"), words[end + 1:]
            if len(words) >= 2 and words[1] == release:
                signed = next((o.split("=", 1)[1] for o in options.split() if o.startswith("signed-by=")), "")
                return Archive(uri=words[0], signed_by=signed, codename=release)
    raise BackportsError(f"no apt source for {release} in {sources_dir}/*.sources or {legacy}: "
                         "add the Debian archive first")


def write_source(text: str, target: Path = TARGET) -> None:
    """Write the backports source atomically; drop the one-line file earlier versions wrote."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    OLD_TARGET.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backports.py", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write the source to {TARGET}")
    parser.add_argument("--suite", help="print the source of this suite of the same archive instead (e.g. the next "
                        "release, for one package's header), as a one-line sources.list entry")
    args = parser.parse_args(argv)
    try:
        archive = release_archive(codename())
    except (BackportsError, OSError) as e:
        print(f"backports: {e}", file=sys.stderr)
        return 2
    if args.suite:
        print(archive.one_line(args.suite), end="")
        return 0
    text = archive.backports()
    if args.write:
        write_source(text)
        print(f"wrote {TARGET}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
