"""Dataset downloads: short bodies refused, bad downloads never cached, the whole download bounded.

A small HTTP server on 127.0.0.1 plays the misbehaving hosts; it is stopped after each test.
"""

import base64
import gzip
import json
import http.server
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from framework import LocalWorkspace, WorkspaceError
from framework.cli import make_cli
from framework.workspace import sources

CSV = b"name,age,label\n" + b"".join(b"p%d,%d,%d\n" % (i, 20 + i % 50, i % 2) for i in range(200))
LOGIN = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form>...</form></body></html>\n"


class Host:
    """What the server sends, by path; tests change it between requests."""

    def __init__(self) -> None:
        self.login_fixed = False
        self.content = CSV
        self.drip_seconds = 0.1
        self.requested = threading.Event()
        self.release = threading.Event()


def handler_for(host: Host) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def send(self, body: bytes, *, length: int | None = None, encoding: str | None = None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/private.csv":  # basic authentication: user / s3cret
                if self.headers.get("Authorization") == "Basic " + base64.b64encode(b"user:s3cret").decode():
                    self.send(CSV, length=len(CSV))
                else:
                    self.send_error(401)
            elif path == "/sas.csv":  # a SAS token's signature in the query
                self.send(CSV, length=len(CSV)) if "sig=S3CRET%2Bx%3D" in query.split("&") else self.send_error(403)
            elif path == "/slow.csv":  # sends its headers, then nothing until the client leaves
                self.send_response(200)
                self.send_header("Content-Length", str(len(CSV)))
                self.end_headers()
                self.wfile.flush()
                host.requested.set()
                host.release.wait(30)
                self.close_connection = True
            elif self.path == "/good.csv":
                self.send(host.content, length=len(host.content))
            elif self.path == "/truncated.csv":  # announces everything, closes halfway
                self.send(CSV[: len(CSV) // 2], length=len(CSV))
            elif self.path == "/gzipped.csv":
                packed = gzip.compress(CSV)
                self.send(packed, length=len(packed), encoding="gzip")
            elif self.path == "/gzip-truncated.csv":  # no Content-Length: only the gzip trailer tells
                self.send(gzip.compress(CSV)[:200], encoding="gzip")
            elif self.path == "/login.csv":
                self.send(CSV if host.login_fixed else LOGIN, length=len(CSV if host.login_fixed else LOGIN))
            elif self.path == "/drip.csv":  # a byte at a time: each read is quick, the whole never ends
                self.send_response(200)
                self.send_header("Content-Length", str(len(CSV)))
                self.end_headers()
                try:
                    for i in range(len(CSV)):
                        self.wfile.write(CSV[i:i + 1])
                        self.wfile.flush()
                        time.sleep(host.drip_seconds)
                except OSError:
                    pass
                self.close_connection = True
            else:
                self.send_error(404)

    return Handler


@pytest.fixture
def host():
    state = Host()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def register(workspace, *args):
    return CliRunner().invoke(make_cli(), ["--workspace", str(workspace.path), "datasets", "register", *args])


def leftovers(workspace):
    return [p for folder in (".staging", "cache") for p in (workspace.path / folder).rglob("*") if p.is_file()]


def test_a_truncated_download_is_refused_and_not_cached(workspace, host):
    result = register(workspace, "d", f"{host.url}/truncated.csv")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: could not download {host.url}/truncated.csv: the connection closed after "
                             f"{len(CSV) // 2} of the {len(CSV)} bytes the server announced (a truncated download); "
                             f"try again\n")
    assert workspace.list_datasets() == [] and leftovers(workspace) == []


def test_a_gzip_transfer_is_decoded_and_a_cut_one_refused(workspace, host):
    version, _ = workspace.register_dataset("zipped", [f"{host.url}/gzipped.csv"])
    assert version.file_paths()[0].read_bytes() == CSV
    with pytest.raises(WorkspaceError, match="the gzip stream ended early after 200 bytes"):
        workspace.register_dataset("cut", [f"{host.url}/gzip-truncated.csv"])
    assert [d.name for d in workspace.list_datasets()] == ["zipped"]


def test_a_login_page_is_named_by_its_url_and_does_not_poison_the_cache(workspace, host):
    url = f"{host.url}/login.csv"
    first = register(workspace, "d", url)
    assert first.exit_code == 2
    assert first.stderr.startswith(f"Error: dataset 'd' source '{url}': login.csv is an HTML or XML page, not a CSV file")
    host.login_fixed = True
    again = register(workspace, "d", url)
    assert again.exit_code == 0, again.stderr
    assert workspace.get_dataset("d").files == ["login.csv"]
    assert workspace.get_dataset("d").file_paths()[0].read_bytes() == CSV


def test_registered_downloads_are_cached_and_refresh_fetches_again(workspace, host):
    url = f"{host.url}/good.csv"
    assert register(workspace, "d", url).exit_code == 0
    host.content = CSV + b"extra,1,0\n"
    cached = register(workspace, "d", url)
    assert "already has this content" in cached.stdout
    refreshed = register(workspace, "d", url, "--refresh")
    assert refreshed.exit_code == 0 and "Registered version 2" in refreshed.stdout
    assert workspace.get_dataset("d").file_paths()[0].read_bytes() == host.content


def test_the_whole_download_is_bounded(workspace, host, monkeypatch):
    monkeypatch.setenv("AMLSTEP_DOWNLOAD_TIMEOUT", "0.5")
    started = time.monotonic()
    result = register(workspace, "d", f"{host.url}/drip.csv")
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert "took longer than the total download timeout of 0.5 s" in result.stderr
    assert "set $AMLSTEP_DOWNLOAD_TIMEOUT to allow more time" in result.stderr
    assert leftovers(workspace) == []


def test_a_killed_download_leaves_nothing_behind(workspace, host, tmp_path):
    code = "import sys; from framework import LocalWorkspace; LocalWorkspace(sys.argv[1]).register_dataset('d', [sys.argv[2]])"
    process = subprocess.Popen([sys.executable, "-c", code, str(workspace.path), f"{host.url}/drip.csv"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((workspace.path / ".staging").rglob("drip.csv")):
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    reopened = LocalWorkspace(workspace.path)
    assert leftovers(reopened) == [] and reopened.list_datasets() == []


def test_large_downloads_report_progress(tmp_path, host, monkeypatch):
    monkeypatch.setattr(sources, "PROGRESS_AFTER_SECONDS", 0.0)
    seen = []
    sources.download(f"{host.url}/good.csv", tmp_path / "x.csv", progress=lambda url, got, total, done: seen.append(
        (got, total, done)))
    assert seen[-1] == (len(CSV), len(CSV), True)
    assert (tmp_path / "x.csv").read_bytes() == CSV


def test_a_copy_is_what_gets_validated_hashed_and_registered(workspace, tmp_path, monkeypatch):
    """A source rewritten while it is registered: the registered file is the copy that was checked."""
    import framework.io

    source = tmp_path / "d.csv"
    source.write_bytes(CSV)
    checked = framework.io.check_delimited_file

    def rewritten_meanwhile(path, what):
        checked(path, what)
        source.write_bytes(b"")

    monkeypatch.setattr(framework.io, "check_delimited_file", rewritten_meanwhile)
    version, _ = workspace.register_dataset("d", [str(source)])
    registered = version.file_paths()[0]
    assert registered.read_bytes() == CSV
    from framework.workspace.store import sha256_file
    import hashlib

    digest = hashlib.sha256(b"d.csv\0" + sha256_file(registered).encode()).hexdigest()
    assert version.sha256 == digest


def test_parquet_files_register_as_they_are(workspace, tmp_path):
    pytest.importorskip("pyarrow", reason="writing and reading Parquet needs pyarrow (comes with the azure extra)")
    import pandas as pd

    path = tmp_path / "table.parquet"
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(path)
    version, _ = workspace.register_dataset("pq", [str(path)])
    assert version.files == ["table.parquet"]
    from framework.io import read_tabular

    assert read_tabular(version.file_paths(), "pq").to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


# -- issue 24: secrets in URLs, SIGTERM during a download ---------------------------------------------------
def _stored(workspace) -> bytes:
    return b"".join(p.read_bytes() for p in workspace.path.glob("amlstep.db*") if p.is_file())


@pytest.mark.parametrize("good, bad, shown, says", [
    ("http://user:s3cret@{host}/private.csv", "http://user:wrong@{host}/private.csv",
     "http://user:***@{host}/private.csv", "HTTP 401 Unauthorized"),
    ("http://{host}/sas.csv?sv=2022-11-02&sp=r&sig=S3CRET%2Bx%3D", "http://{host}/sas.csv?sv=2022-11-02&sp=r&sig=wrong",
     "http://{host}/sas.csv?sv=2022-11-02&sp=r&sig=***", "HTTP 403 Forbidden"),
])
def test_secrets_in_a_url_are_used_but_never_stored_for_display_nor_shown(workspace, host, good, bad, shown, says):
    address = host.url.removeprefix("http://")
    good, bad, shown = (u.format(host=address) for u in (good, bad, shown))
    refused = register(workspace, "d", bad)
    assert refused.exit_code == 2
    assert refused.stderr == f"Error: could not download {shown.replace('S3CRET', 'wrong')}: {says}\n"
    registered = register(workspace, "d", good)
    assert registered.exit_code == 0, registered.output
    assert workspace.get_dataset("d").file_paths()[0].read_bytes() == CSV
    for command in (["datasets", "list", "--json"], ["datasets", "show", "d", "--json"]):
        listed = CliRunner().invoke(make_cli(), ["--workspace", str(workspace.path), *command])
        assert listed.exit_code == 0 and shown in listed.stdout and "s3cret" not in listed.stdout.lower()
    assert json.loads(CliRunner().invoke(make_cli(), ["--workspace", str(workspace.path), "datasets", "list",
                                                      "--json"]).stdout)[0]["sources"] == [shown]
    assert b"s3cret" not in _stored(workspace).lower()


def test_a_password_in_a_url_is_not_taken_for_the_host_name(workspace, host):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = register(workspace, "d", f"http://user:s3cret@127.0.0.1:{port}/x.csv")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: could not download http://user:***@127.0.0.1:{port}/x.csv: [Errno 111] Connection "
                             f"refused\n")


def test_sigterm_during_the_download_of_a_slow_url_is_one_line_and_leaves_nothing(workspace, host):
    process = subprocess.Popen([sys.executable, "-m", "framework.cli", "--workspace", str(workspace.path), "datasets",
                                "register", "d", f"{host.url}/slow.csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert host.requested.wait(60), "the download never started"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (process.returncode, err) == (1, "Error: interrupted: nothing was registered as dataset 'd'\n")
    assert leftovers(workspace) == [] and not any((workspace.path / ".staging").iterdir())
    assert LocalWorkspace(workspace.path).list_datasets() == []
