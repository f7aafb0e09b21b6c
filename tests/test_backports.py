"""toolkit/core/backports.py: the backports source derived from the machine's own apt sources."""

from pathlib import Path

import pytest

from toolkit.core.backports import BackportsError, codename, deb822_stanzas, release_archive

DEB822 = """Types: deb
# a comment inside the stanza
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://archive.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_source_gives_backports_on_the_same_archive(tmp_path: Path):
    (tmp_path / "debian.sources").write_text(DEB822)
    archive = release_archive("bookworm", tmp_path, tmp_path / "sources.list")
    text = archive.backports()
    stanza = deb822_stanzas(text)[0]
    assert stanza == {"types": "deb", "uris": "http://archive.example/debian", "suites": "bookworm-backports",
                      "components": "main", "signed-by": "/usr/share/keyrings/debian-archive-keyring.gpg"}


def test_security_only_or_disabled_sources_are_not_the_release(tmp_path: Path):
    (tmp_path / "a.sources").write_text(DEB822.split("\n\n")[1])
    (tmp_path / "b.sources").write_text("Enabled: no\nTypes: deb\nURIs: http://x.example/debian\nSuites: bookworm\n")
    with pytest.raises(BackportsError, match="no apt source for bookworm"):
        release_archive("bookworm", tmp_path, tmp_path / "sources.list")


def test_legacy_sources_list(tmp_path: Path):
    legacy = tmp_path / "sources.list"
    legacy.write_text("# old style\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
                      "deb http://mirror.example/debian-security bookworm-security main\n")
    archive = release_archive("bookworm", tmp_path / "none", legacy)
    assert (archive.uri, archive.signed_by) == ("http://mirror.example/debian", "/k.gpg")


def test_codename(tmp_path: Path):
    (tmp_path / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    assert codename(tmp_path / "os-release") == "bookworm"
    (tmp_path / "os-release").write_text("ID=alpine\n")
    with pytest.raises(BackportsError, match="VERSION_CODENAME"):
        codename(tmp_path / "os-release")


def test_another_suite_as_one_line(tmp_path: Path):
    (tmp_path / "debian.sources").write_text(DEB822)
    archive = release_archive("bookworm", tmp_path, tmp_path / "sources.list")
    assert archive.one_line("trixie") == ("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                                          "http://archive.example/debian trixie main\n")
