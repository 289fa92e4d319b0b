"""Fetching dataset sources into a staging folder: local files copied, URLs downloaded (bounded, checked).

A download is complete only when it has as many bytes as the server announced (Content-Length)
and, when the server compressed it (Content-Encoding gzip/deflate), when the compressed stream
ends properly. The whole download is bounded by a total timeout, ``$AMLSTEP_DOWNLOAD_TIMEOUT``
seconds (default 600), besides the per-read timeout of 30 s. A URL lands in the download cache
only after its file registered successfully; ``refresh=True`` ignores the cache.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import shutil
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from pathlib import Path
from typing import Callable, Iterable

from ..errors import WorkspaceError
from .db import WorkspaceUnwritable, is_disk_full, no_space_message

DOWNLOAD_TIMEOUT_SECONDS = 30.0  # per socket read; the whole download is bounded by download_timeout()
DOWNLOAD_TIMEOUT_ENV = "AMLSTEP_DOWNLOAD_TIMEOUT"
DEFAULT_DOWNLOAD_TIMEOUT = 600.0
PROGRESS_AFTER_SECONDS = 2.0
CHUNK = 1 << 16

Progress = Callable[[str, int, "int | None", bool], None]


# Query parameters that carry secrets: Azure SAS signatures, OAuth and API tokens, cloud signatures.
SECRET_PARAMETERS = frozenset({
    "sig", "signature", "token", "access_token", "refresh_token", "id_token", "code", "password", "passwd", "pwd",
    "secret", "client_secret", "key", "apikey", "api_key", "api-key", "sas", "x-amz-signature",
    "x-amz-security-token", "x-amz-credential", "x-goog-signature", "x-goog-credential",
})
REDACTED = "***"


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def redact(source: str) -> str:
    """``source`` as it may be shown or stored for display: a URL's password and secret query parameters
    (a SAS token's ``sig``, ``token=``, ``key=``...) replaced by ``***``. Anything else unchanged."""
    if "://" not in source:
        return source
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError:
        return source
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':' + REDACTED if colon else ''}@{host}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, equals, _ = pair.partition("=")
            secret = urllib.parse.unquote_plus(name).strip().lower() in SECRET_PARAMETERS
            pairs.append(f"{name}={REDACTED}" if equals and secret else pair)
        query = "&".join(pairs)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its ``user:password@`` part, and the Authorization header that carries them instead
    (urllib would take them for part of the host name)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}


def download_timeout() -> float:
    """The total time a download may take: ``$AMLSTEP_DOWNLOAD_TIMEOUT`` seconds, default 600."""
    value = os.environ.get(DOWNLOAD_TIMEOUT_ENV)
    try:
        return max(0.1, float(value)) if value else DEFAULT_DOWNLOAD_TIMEOUT
    except ValueError:
        raise WorkspaceError(f"${DOWNLOAD_TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None


def source_name(source: str) -> str:
    """The file name a source is registered under: the file's name, or the last part of the URL's path."""
    if is_url(source):
        return os.path.basename(urllib.parse.urlsplit(source).path) or "download.csv"
    return Path(source).name


def cache_path(source: str, cache_dir: Path) -> Path:
    return cache_dir / f"{hashlib.sha256(source.encode()).hexdigest()[:16]}-{source_name(source)}"


def fetch_into(source: str, target: Path, cache_dir: Path, *, refresh: bool = False,
               progress: Progress | None = None) -> bool:
    """Put a copy of ``source`` at ``target`` (in a staging folder); return whether it came from the cache.

    The copy is what gets validated, hashed and registered: a source rewritten meanwhile cannot
    make the registered file differ from what was checked.
    """
    workspace = cache_dir.parent.parent
    try:
        if not is_url(source):
            path = Path(source).expanduser()
            if not path.is_file():
                raise WorkspaceError(f"dataset source {redact(source)!r} does not exist or is not a file")
            if not os.access(path, os.R_OK):
                raise WorkspaceError(f"dataset source {redact(source)!r} is not readable")
            shutil.copyfile(path, target)
            keep_permissions(path, target)
            return False
        cached = cache_path(source, cache_dir)
        if cached.is_file() and not refresh:
            shutil.copyfile(cached, target)
            keep_permissions(cached, target)
            return True
        download(source, target, progress=progress if progress is not None else terminal_progress())
        return False
    except OSError as exc:
        target.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise WorkspaceUnwritable(no_space_message(workspace)) from None
        raise WorkspaceError(f"dataset source {redact(source)!r}: cannot copy it into the workspace: "
                             f"{exc.strerror or exc}") from None


def umask() -> int:
    """This process's umask (read from /proc where it can be, without changing it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def keep_permissions(source: Path, copy: Path, mask: int | None = None) -> None:
    """Give ``copy`` the permissions of ``source`` or those the umask allows, whichever is stricter: a file
    only its owner may read stays so in the workspace."""
    allowed = stat.S_IMODE(source.stat().st_mode) & ~(umask() if mask is None else mask) & 0o777
    os.chmod(copy, allowed)


def keep_tree_permissions(source: Path, copy: Path) -> None:
    """``keep_permissions`` for every file and folder of a copied tree (folders stay usable by their owner)."""
    mask = umask()
    for path in [copy, *copy.rglob("*")]:
        original = source / path.relative_to(copy)
        if path.is_symlink() or not original.exists():
            continue
        keep_permissions(original, path, mask)
        if path.is_dir():
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | stat.S_IRWXU)


def cache_download(source: str, registered: Path, cache_dir: Path) -> None:
    """Keep the registered copy of URL ``source`` in the download cache (best effort)."""
    if not is_url(source):
        return
    target = cache_path(source, cache_dir)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(registered, partial)
        keep_permissions(registered, partial)
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)


def download(url: str, target: Path, *, timeout: float | None = None, progress: Progress | None = None) -> None:
    """Download ``url`` into ``target``, refusing a short or unfinished body; bounded by ``timeout`` in total."""
    total = download_timeout() if timeout is None else timeout
    started = time.monotonic()
    deadline = started + total
    received = 0
    address, authorization = _credentials(url)
    url = redact(url)  # every message names the URL without its secrets
    request = urllib.request.Request(address, headers={"User-Agent": "amlstep", "Accept-Encoding": "identity",
                                                       **authorization})
    try:
        with urllib.request.urlopen(request, timeout=min(DOWNLOAD_TIMEOUT_SECONDS, total)) as response, \
                open(target, "wb") as out:
            length = _content_length(response.headers.get("Content-Length"))
            encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
                raise WorkspaceError(f"could not download {url}: the server sent it {encoding}-encoded, which "
                                     f"amlstep cannot decode")
            inflate = zlib.decompressobj(47) if encoding != "identity" else None  # 47: gzip or zlib header
            shown = False
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _too_slow(url, total, received, length)
                _set_read_timeout(response, min(DOWNLOAD_TIMEOUT_SECONDS, remaining))
                chunk = response.read1(CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                out.write(inflate.decompress(chunk) if inflate is not None else chunk)
                if progress is not None and (shown or time.monotonic() - started > PROGRESS_AFTER_SECONDS):
                    progress(url, received, length, False)
                    shown = True
            if time.monotonic() > deadline:
                raise _too_slow(url, total, received, length)
            if length is not None and received < length:
                raise WorkspaceError(f"could not download {url}: the connection closed after {received} of the "
                                     f"{length} bytes the server announced (a truncated download); try again")
            if inflate is not None:
                out.write(inflate.flush())
                if not inflate.eof:
                    raise WorkspaceError(f"could not download {url}: the {encoding} stream ended early after {received} "
                                         f"bytes (a truncated download); try again")
            if shown and progress is not None:
                progress(url, received, length, True)
    except WorkspaceError:
        target.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise WorkspaceError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        target.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise
        if isinstance(exc, TimeoutError) or "timed out" in str(getattr(exc, "reason", exc)):
            if time.monotonic() >= deadline - 0.05:
                raise _too_slow(url, total, received, None) from None
            raise WorkspaceError(f"could not download {url}: no data for {DOWNLOAD_TIMEOUT_SECONDS:g} s") from None
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise WorkspaceError(f"could not download {url}: {reason}") from None
    except (http.client.HTTPException, ValueError, zlib.error) as exc:
        target.unlink(missing_ok=True)
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise WorkspaceError(f"could not download {url}: {text} (a truncated or malformed response); try again") from None


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _set_read_timeout(response: object, seconds: float) -> None:
    """Shorten the socket timeout so that a stalled read ends by the total deadline."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.settimeout(max(0.01, seconds))
        except OSError:
            pass


def _too_slow(url: str, total: float, received: int, length: int | None) -> WorkspaceError:
    of = f" of {length}" if length is not None else ""
    return WorkspaceError(f"could not download {url}: it took longer than the total download timeout of {total:g} s "
                          f"({received}{of} bytes received); set ${DOWNLOAD_TIMEOUT_ENV} to allow more time")


def terminal_progress() -> Progress | None:
    """Progress on stderr for downloads that take more than a moment, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None

    def show(url: str, received: int, length: int | None, done: bool) -> None:
        size = f"{received / 1e6:.1f} MB" + (f" of {length / 1e6:.1f} MB ({100 * received // length}%)" if length else "")
        end = "\n" if done else ""
        print(f"\rdownloading {url}: {size}", end=end, file=sys.stderr, flush=True)

    return show


def check_each_source_once(name: str, sources: Iterable[str]) -> None:
    """Refuse a file or URL given twice to dataset ``name`` (local paths compared once resolved): its rows
    would be registered twice."""
    seen: dict[str, str] = {}
    for source in sources:
        key = source if is_url(source) else str(Path(source).expanduser().resolve())
        if key in seen:
            first = seen[key]
            also = f" (first as {redact(first)})" if first != source else ""
            raise WorkspaceError(f"dataset {name!r}: {redact(source)} is given twice{also}; give each file once")
        seen[key] = source


def resolved_sources(sources: Iterable[str]) -> list[str]:
    """Existing local files as absolute paths (URLs and anything else as given, for the error to name),
    so that a dataset records where its files came from wherever the command ran."""
    return [str(Path(s).expanduser().resolve()) if not is_url(s) and Path(s).expanduser().is_file() else s
            for s in sources]
