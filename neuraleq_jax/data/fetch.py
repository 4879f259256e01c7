"""Download crowd data sets as a user would (``neuraleq data fetch audealize|socialfx``).

Audealize's word curves are GPL-2.0 upstream, so the package never ships them: this module
downloads the file from the Audealize plug-in repository over HTTPS, checks its sha256 against
the digest of the published file, checks that it reads as Audealize's format, and only then
writes it (atomically) into the destination folder. SocialFX's contributions (no licence
stated) are fetched the same way, from the IMPBookCode repository, pinned to one commit. With
another source (``source=``, a path or URL) the digest is reported instead of enforced, unless
one is given (``expected_sha256``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path

from neuraleq_jax.data import audealize, socialfx
from neuraleq_jax.fileio import atomic_write_bytes


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A downloadable data set: where it lives upstream, its digest and its file name."""

    url: str
    sha256: str
    filename: str
    licence: str


SOURCES = {
    "audealize": DataSource(
        # pinned to a commit, so that the file (and its digest) cannot move under the URL
        url=(
            "https://raw.githubusercontent.com/interactiveaudiolab/audealize-plugin/"
            "30517bf5ad10d2062e00af0a347875e274c6fe1a/"
            "JUCE%20Modules/audealize_module/data/eqdescriptors.json"
        ),
        sha256="7483d83d93f493360e5b3526c9db183650199d6f7813ecf99620281735c49004",
        filename="eqdescriptors.json",
        licence="GPL-2.0 (interactiveaudiolab/audealize-plugin)",
    ),
    "socialfx": DataSource(
        url=(
            "https://raw.githubusercontent.com/ryanstables/IMPBookCode/"
            "a1fc5474773a9107e9f603ad034fae53edf7dc35/data/raw/eq_contributions.csv"
        ),
        sha256="80f967a4131f53fec882c1b0fc7ae7a0f8aa1c181f45fcf9cd555d35a49342f0",
        filename="eq_contributions.csv",
        licence="none stated (ryanstables/IMPBookCode); cite Zheng, Seetharaman and Pardo 2016",
    ),
}
MAX_BYTES = 64 << 20  # far above the files (364 kB, 1.3 MB); a larger download is not them
TIMEOUT_S = 60


class DownloadError(RuntimeError):
    """The download itself failed (no connection, an HTTP error, a reply cut short): the
    command was right, the network was not (``neuraleq data fetch`` exits 1)."""


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """What a fetch did: the file written, its sha256, whether the digest was checked."""

    path: Path
    sha256: str
    size: int
    verified: bool
    source: str


def _read_source(source: str) -> bytes:
    """The bytes at a URL (``https://``, ``http://``, ``file://``) or a local path."""
    if "://" not in source:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"source file not found: {path}")
        data = path.read_bytes()
    else:
        if not source.startswith(("https://", "http://", "file://")):
            raise ValueError(
                f"cannot fetch {source!r}: give an https://, http:// or file:// "
                f"URL, or a local path"
            )
        try:
            with urllib.request.urlopen(source, timeout=TIMEOUT_S) as reply:
                data = reply.read(MAX_BYTES + 1)
                promised = reply.headers.get("Content-Length", "")
            if promised.isdigit() and len(data) < int(promised):  # the connection dropped
                raise http.client.IncompleteRead(data, int(promised) - len(data))
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise DownloadError(f"download of {source} failed: {reason}") from None
    if len(data) > MAX_BYTES:
        raise ValueError(f"{source} is larger than {MAX_BYTES >> 20} MiB; not this data set")
    return data


def _check_format(name: str, data: bytes, source: str) -> None:
    """Raise ValueError unless ``data`` reads as the data set ``name``."""
    if name == "socialfx":
        socialfx.parse_bytes(data, on_malformed="raise", source=source)
        return
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{source} is not UTF-8 JSON ({error}); not Audealize's {SOURCES[name].filename}"
        ) from None
    audealize.parse_audealize(document, on_malformed="skip", source=source)


def fetch(
    name: str,
    dest: str | Path = ".",
    *,
    source: str | None = None,
    expected_sha256: str | None = None,
    force: bool = False,
) -> FetchResult:
    """Download the data set ``name`` into the folder ``dest``.

    Args:
      name: a key of :data:`SOURCES` (``"audealize"``, ``"socialfx"``).
      dest: folder for the file (created if missing).
      source: another path or URL; then the digest is only reported, unless
        ``expected_sha256`` is given.
      expected_sha256: the digest to enforce (default: the upstream file's, without
        ``source``).
      force: replace an existing, different file at the destination.
    Raises:
      ValueError: unknown name, digest mismatch, not the data set's format, or an existing
        different file without ``force``; nothing is written then.
      DownloadError: the download failed (network, HTTP status); nothing is written.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(SOURCES)}")
    entry = SOURCES[name]
    if Path(dest).exists() and not Path(dest).is_dir():  # before downloading anything
        raise NotADirectoryError(
            f"dest {dest} is a file, not a folder; give the folder to save {entry.filename} in"
        )
    where = source or entry.url
    if expected_sha256 is None and source is None:
        expected_sha256 = entry.sha256
    data = _read_source(where)
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.strip().lower():
        raise ValueError(
            f"sha256 of {where} is {digest}, expected {expected_sha256}; the file "
            f"was not written (the upstream file may have changed: check it and "
            f"pass --from URL to accept another version)"
        )
    _check_format(name, data, where)
    target = Path(dest) / entry.filename
    differs = target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() != digest
    if differs and not force:
        raise ValueError(
            f"{target} exists and differs from the download; pass --force to replace it"
        )
    atomic_write_bytes(target, data)  # makes the folder too
    return FetchResult(
        path=target,
        sha256=digest,
        size=len(data),
        verified=expected_sha256 is not None,
        source=where,
    )
