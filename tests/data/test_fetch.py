"""`neuraleq data fetch audealize` against a local HTTP server serving the shared copy.

The shared copy omits words, so its digest is not the upstream file's: the default path
(digest enforced) must refuse it and write nothing; ``--from`` reports its digest instead.
"""

import functools
import hashlib
import http.server
import shutil
import threading

import pytest
from conftest import AUDEALIZE_JSON, require_shared

from neuraleq_jax import cli
from neuraleq_jax.data import fetch


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(base URL, sha256 of the served copy)`` of a server on 127.0.0.1 (a free port)."""
    require_shared(AUDEALIZE_JSON, "Audealize's curves")
    root = tmp_path_factory.mktemp("server")
    shutil.copy(AUDEALIZE_JSON, root / "eqdescriptors.json")
    (root / "other.json").write_text('{"not": "audealize"}', encoding="utf-8")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    digest = hashlib.sha256(AUDEALIZE_JSON.read_bytes()).hexdigest()
    yield f"http://127.0.0.1:{server.server_address[1]}", digest
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def test_from_url_writes_the_file_and_reports_its_digest(served, tmp_path, capsys):
    base, digest = served
    dest = tmp_path / "data"
    assert (
        cli.main(
            [
                "data",
                "fetch",
                "audealize",
                "--from",
                f"{base}/eqdescriptors.json",
                "--dest",
                str(dest),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"sha256 {digest}" in out and "not checked" in out
    assert (dest / "eqdescriptors.json").read_bytes() == AUDEALIZE_JSON.read_bytes()
    # the same file again is fine; a given digest is enforced and reported as verified
    result = fetch.fetch(
        "audealize", dest, source=f"{base}/eqdescriptors.json", expected_sha256=digest
    )
    assert (
        result.verified
        and result.sha256 == digest
        and result.size == len(AUDEALIZE_JSON.read_bytes())
    )


def test_digest_mismatch_is_a_clear_error_and_writes_nothing(served, tmp_path, monkeypatch, capsys):
    base, digest = served
    upstream = fetch.SOURCES["audealize"]
    # the default source, pointed at the local server: the copy is not the upstream file
    monkeypatch.setitem(
        fetch.SOURCES,
        "audealize",
        fetch.DataSource(
            url=f"{base}/eqdescriptors.json",
            sha256=upstream.sha256,
            filename=upstream.filename,
            licence=upstream.licence,
        ),
    )
    dest = tmp_path / "data"
    assert cli.main(["data", "fetch", "audealize", "--dest", str(dest)]) == 2
    error = capsys.readouterr().err
    assert f"sha256 of {base}/eqdescriptors.json is {digest}, expected {upstream.sha256}" in error
    assert "\n" not in error.strip() and not dest.exists()
    assert (
        cli.main(
            [
                "data",
                "fetch",
                "audealize",
                "--from",
                f"{base}/eqdescriptors.json",
                "--sha256",
                "0" * 64,
                "--dest",
                str(dest),
            ]
        )
        == 2
    )
    assert not dest.exists()


def test_wrong_content_missing_source_and_existing_file(served, tmp_path):
    base, _ = served
    with pytest.raises(ValueError, match="non-empty JSON list"):
        fetch.fetch("audealize", tmp_path, source=f"{base}/other.json")
    with pytest.raises(RuntimeError, match="download of .* failed"):
        fetch.fetch("audealize", tmp_path, source=f"{base}/absent.json")
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "eqdescriptors.json"
    existing.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="exists and differs.*--force"):
        fetch.fetch("audealize", tmp_path, source=str(AUDEALIZE_JSON))
    assert existing.read_text(encoding="utf-8") == "[]"
    fetch.fetch("audealize", tmp_path, source=str(AUDEALIZE_JSON), force=True)
    assert existing.read_bytes() == AUDEALIZE_JSON.read_bytes()
    with pytest.raises(ValueError, match="unknown data set 'safe'"):
        fetch.fetch("safe", tmp_path)
    # a file as the folder: refused before any download, and left as it was
    with pytest.raises(NotADirectoryError, match="eqdescriptors.json is a file, not a folder"):
        fetch.fetch("audealize", existing, source=f"{base}/absent.json")
    assert existing.read_bytes() == AUDEALIZE_JSON.read_bytes()


def test_default_source_is_https_with_the_published_digest():
    source = fetch.SOURCES["audealize"]
    assert source.url.startswith("https://raw.githubusercontent.com/interactiveaudiolab/")
    assert source.sha256 == "7483d83d93f493360e5b3526c9db183650199d6f7813ecf99620281735c49004"


class FailingHandler(QuietHandler):
    """A server that is up but fails: 503 for every path, or (``/cut``) a reply cut short."""

    def do_GET(self):
        if self.path == "/cut":  # promises 1000 bytes, sends one and closes
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"{")
            return
        self.send_error(503, "down for maintenance")


@pytest.fixture(scope="module")
def failing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FailingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    """A local port that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("failure", ["http 503", "cut short", "refused"])
def test_a_network_failure_is_exit_1_in_one_line_and_writes_nothing(
    failure, failing_server, tmp_path, capsys
):
    """docs/cli.md: 1 when the command is right but a file or network operation failed (2 is
    for a wrong command line)."""
    url = {
        "http 503": f"{failing_server}/eqdescriptors.json",
        "cut short": f"{failing_server}/cut",
        "refused": f"http://127.0.0.1:{_closed_port()}/eqdescriptors.json",
    }[failure]
    dest = tmp_path / "data"
    assert cli.main(["data", "fetch", "audealize", "--from", url, "--dest", str(dest)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"neuraleq data: download of {url} failed")
    assert not dest.exists()
