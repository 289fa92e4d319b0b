"""The fake service runs what it is sent, so it trusts only what it issued; and no request can hold or crash it.

Raw HTTP against a started fake (execute=False: nothing runs): tokens (forged, unsigned, another instance's,
tampered), SAS signatures, the on-behalf-of endpoint, the Host header (DNS rebinding), body framing and size,
slow and vanishing clients; then ``amlstep fake-azure`` itself: its config file, its folders, its port.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.azure_service import FakeAzureML
from emulator.azure_service.command import fake_azure_command
from emulator.azure_service.service import ACCOUNT, RESOURCE_GROUP, SUBSCRIPTION
from emulator.azure_service.tokens import Tokens, b64

BLOB_HOST = f"{ACCOUNT}.blob.core.windows.net"
WHERE_FROM = ("the fake service accepts only the tokens it issued: use the token of the config.json `amlstep "
              "fake-azure` wrote (each start makes new ones)")


@pytest.fixture(scope="module")
def fake():
    with FakeAzureML(execute=False, max_body=4096, request_timeout=2) as service:
        yield service


def ws_path(fake):
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{fake.workspace_name}?api-version=2023-04-01")


def connection(fake, api):
    if api == "v1":
        return http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    context = ssl.create_default_context(cafile=str(fake.ca.ca_file))
    return http.client.HTTPSConnection("127.0.0.1", fake.port, timeout=10, context=context)


def request(fake, api, method, path, *, token=None, headers=None, body=None, host=None):
    """(status, parsed body, headers) of one request; ``host``: the Host header sent (None: the right one)."""
    conn = connection(fake, api)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{fake.port}")
        if token is not None:
            conn.putheader("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        answer = conn.getresponse()
        data = answer.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode()
        return answer.status, parsed, dict(answer.getheaders())
    finally:
        conn.close()


def raw(fake, data, *, read=True):
    """Send ``data`` as it is on a plain connection; what came back before the service closed it."""
    with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while read:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def problems_after(fake, before, count=1, seconds=10.0):
    """The problems the service logged after the ``before`` first, once there are ``count`` (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while len(fake.problems) < before + count and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(fake.problems)[before:]


def unsigned(fake, **claims):
    return ".".join([b64({"alg": "none", "typ": "JWT"}),
                     b64({"exp": int(time.time()) + 3600, "tid": fake.tokens.tenant, "upn": "fake@example.com",
                          **claims}), ""])


# -- tokens ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_self_made_unsigned_token_is_refused_in_each_apis_shape(fake, api):
    """An alg-none token was accepted: a whole Titanic pipeline submitted with one ran."""
    status, body, _ = request(fake, api, "GET", ws_path(fake), token=unsigned(fake))
    assert status == 401
    assert body["error"]["code"] == "InvalidAuthenticationToken"
    assert body["error"]["message"] == f"The access token is invalid: it is not signed (alg 'none'); {WHERE_FROM}."
    assert ("additionalInfo" in body["error"]) is (api == "v2")   # ARM's shape under v2, SDK v1's under v1
    assert request(fake, api, "GET", ws_path(fake), token=fake.token)[0] == 200


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_tokens_this_instance_did_not_sign_are_refused(fake, api):
    other = Tokens(fake.tokens.tenant).issue()                         # another instance's (another secret)
    header, claims, signature = fake.token.split(".")
    raised = b64({**json.loads(__import__("base64").urlsafe_b64decode(claims + "==")), "upn": "admin@example.com"})
    tampered = ".".join([header, raised, signature])                   # claims changed, signature kept
    rs256 = ".".join([b64({"alg": "RS256", "typ": "JWT"}), claims, signature])
    for token, problem in [(other, "its signature does not verify (a forged token, or one of another instance)"),
                           (tampered, "its signature does not verify (a forged token, or one of another instance)"),
                           (rs256, "it is signed with 'RS256', not by this service")]:
        status, body, _ = request(fake, api, "GET", ws_path(fake), token=token)
        assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")
        assert body["error"]["message"] == f"The access token is invalid: {problem}; {WHERE_FROM}."


def test_a_refused_token_is_one_line_on_the_console(fake, capfd):
    before = len(fake.problems)
    request(fake, "v1", "GET", ws_path(fake), token=unsigned(fake))
    line, = problems_after(fake, before)
    assert line.startswith("GET /subscriptions/") and "refused (401): The access token is invalid: it is not " \
                                                      "signed (alg 'none')" in line
    assert "Traceback" not in capfd.readouterr().err


def test_the_run_tokens_of_steps_are_signed_by_the_service(fake):
    from emulator.azure_service.engine import RunRecord

    record = RunRecord(id="run-1", experiment="e", run_type="azureml.StepRun", name="step", number=1)
    fake.engine.runs[record.id] = record
    token = fake._runtime_env(record)["AZUREML_RUN_TOKEN"]
    assert fake.tokens.problem(f"Bearer {token}") is None
    assert request(fake, "v1", "GET", ws_path(fake), token=token)[0] == 200


# -- the on-behalf-of endpoint --------------------------------------------------------------------------------
def test_the_on_behalf_of_endpoint_answers_only_a_jobs_own_url(fake):
    """GET /obo/token handed anyone a token the service accepted."""
    assert request(fake, "v2", "GET", "/obo/token?resource=https://ml.azure.invalid")[0] in (401, 404)
    forged = "/obo/run-1/" + "A" * 43 + "/token?resource=https://ml.azure.invalid"
    status, body, _ = request(fake, "v2", "GET", forged)
    assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")
    own = fake.api_v2.obo_endpoint("run-1").removeprefix(fake.tls_url) + "?resource=https://ml.azure.invalid"
    status, body, _ = request(fake, "v2", "GET", own)
    assert status == 200 and fake.tokens.problem(f"Bearer {body['access_token']}") is None


# -- blob storage ---------------------------------------------------------------------------------------------
def blob(fake, method, path, *, headers=None, body=None):
    """A request to the blob store through the service's CONNECT tunnel (as the SDKs reach it)."""
    context = ssl.create_default_context(cafile=str(fake.ca.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", fake.port, timeout=10, context=context)
    conn.set_tunnel(BLOB_HOST, 443)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.getheader("x-ms-error-code"), answer.read().decode()
    finally:
        conn.close()


def test_blob_requests_need_the_sas_or_a_token_the_service_issued(fake):
    """Any sig= (or any Authorization header) wrote blobs: the snapshots and models the service runs and serves."""
    data = b"print('x')\n"
    forged = blob(fake, "PUT", "/snap/x.py?sig=ZmFrZQ%3D%3D", headers={"x-ms-blob-type": "BlockBlob",
                                                                       "Content-Length": str(len(data))}, body=data)
    assert forged[:2] == (403, "AuthenticationFailed") and "the SAS signature is not one this fake service " \
                                                             "issued" in forged[2]
    bearer = blob(fake, "GET", "/snap/x.py", headers={"Authorization": f"Bearer {unsigned(fake)}"})
    assert bearer[:2] == (401, "InvalidAuthenticationInfo")
    shared_key = blob(fake, "GET", "/snap/x.py", headers={"Authorization": f"SharedKey {ACCOUNT}:c2ln"})
    assert shared_key[:2] == (403, "AuthenticationFailed")
    assert not fake.blob.exists("snap", "x.py")
    good = blob(fake, "PUT", f"/snap/x.py?sig={fake.tokens.sas_signature}",
                headers={"x-ms-blob-type": "BlockBlob", "Content-Length": str(len(data))}, body=data)
    assert good[0] == 201 and fake.blob.get("snap", "x.py") == data
    assert blob(fake, "GET", "/snap/x.py", headers={"Authorization": f"Bearer {fake.token}"})[0] == 200


def test_the_sas_the_apis_hand_out_is_the_instances(fake):
    status, body, _ = request(fake, "v1", "GET", f"/datastore/v1.0/subscriptions/{SUBSCRIPTION}/resourceGroups/"
                                                 f"{RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/"
                                                 f"workspaces/{fake.workspace_name}/datastores/workspaceblobstore",
                              token=fake.token)
    assert status == 200 and body["azureStorageSection"]["sasToken"].endswith(f"&sig={fake.tokens.sas_signature}")
    assert "ZmFrZQ" not in json.dumps(body)


def test_an_upload_without_a_length_is_refused_as_azure_storage_does(fake):
    status, code, text = blob(fake, "PUT", f"/snap/y.py?sig={fake.tokens.sas_signature}",
                              headers={"x-ms-blob-type": "BlockBlob"})
    assert (status, code) == (411, "MissingContentLengthHeader") and "The Content-Length header was not " \
                                                                      "specified." in text


# -- the Host header ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_request_under_another_name_is_refused_dns_rebinding(fake, api):
    """The Host header was ignored: a web page whose name resolves to 127.0.0.1 could talk to the service."""
    for host in ("evil.example:%d" % fake.port, "127.0.0.1:1", "127.0.0.1.nip.io:%d" % fake.port):
        status, body, headers = request(fake, api, "GET", ws_path(fake), token=fake.token, host=host)
        assert (status, body["error"]["code"]) == (400, "BadRequest")
        assert body["error"]["message"] == (
            f"the Host header {host!r} does not name this service: it answers requests for 127.0.0.1:{fake.port} or "
            f"localhost:{fake.port} only (a web page that reaches 127.0.0.1 under another name is refused)")
        assert headers["Connection"] == "close"
    for host in (f"localhost:{fake.port}", f"127.0.0.1:{fake.port}", f"[::1]:{fake.port}"):
        assert request(fake, api, "GET", ws_path(fake), token=fake.token, host=host)[0] == 200


def test_the_read_only_blob_path_checks_the_host_too_in_the_blob_stores_shape(fake):
    status, body, headers = request(fake, "v1", "GET", f"/blob/{ACCOUNT}/snap/x.py", host="evil.example")
    assert status == 400 and headers["x-ms-error-code"] == "InvalidInput" and "does not name this service" in body


def test_a_request_without_a_host_header_is_refused(fake):
    answer = raw(fake, b"GET /discovery HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"the request has no Host header; the fake service answers requests for 127.0.0.1:" in answer


# -- framing and size -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("length, message", [
    ("-1", "Content-Length '-1' is not a number of bytes"),
    ("abc", "Content-Length 'abc' is not a number of bytes"),
    ("5, 6", "Content-Length '5, 6' is not a number of bytes"),
    ("+5", "Content-Length '+5' is not a number of bytes"),
])
def test_a_content_length_that_is_not_a_number_of_bytes_is_refused_at_once(fake, length, message):
    """Content-Length: -1 held a handler until the client left (read until end of stream)."""
    status, body, headers = request(fake, "v1", "POST", "/discovery", headers={"Content-Length": length})
    assert (status, body["error"]["code"], body["error"]["message"]) == (400, "BadRequest", message)
    assert headers["Connection"] == "close"


def test_a_body_beyond_the_limit_is_refused_before_it_is_read(fake):
    """A 200 MB body cost 200 MB of memory: the service read whatever it was sent."""
    # answered at once: nothing of the body is sent, nothing read
    answer = raw(fake, f"PUT /x HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nContent-Length: 200000000\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"the request body of 200000000 bytes is larger than the 4096 bytes the fake service reads in one " \
           b"request (the SDKs upload larger files in blocks)" in answer
    chunked = (f"POST /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nTransfer-Encoding: chunked\r\n\r\n"
               f"1001\r\n".encode())   # a chunk of 4097 bytes announced: refused before it comes
    answer = raw(fake, chunked)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"the chunked request body is larger than the 4096 bytes" in answer


def test_the_default_limit_holds_what_the_sdks_upload_in_one_request():
    from emulator.azure_service.service import MAX_BODY

    assert MAX_BODY >= 64 * 1024 * 1024   # azure-storage-blob's max_single_put_size; blocks are 4 MiB


@pytest.mark.parametrize("head, message", [
    ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
     b"the request has both Transfer-Encoding and Content-Length; send one of them"),
    ("Transfer-Encoding: gzip, chunked\r\n", b"Transfer-Encoding 'gzip, chunked' is not supported; send Content-Length "
                                              b"or chunked"),
])
def test_framing_it_cannot_trust_is_refused(fake, head, message):
    answer = raw(fake, f"POST /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\n{head}\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400 ") and message in answer


@pytest.mark.parametrize("body, message", [
    (b"zz\r\nab\r\n0\r\n\r\n", b"malformed chunked body: chunk size 'zz' is not a hexadecimal number"),
    (b"2\r\nabcd\r\n0\r\n\r\n", b"malformed chunked body: a chunk is longer than its size says"),
])
def test_a_malformed_chunked_body_is_refused(fake, body, message):
    head = f"POST /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    answer = raw(fake, head + body)
    assert answer.startswith(b"HTTP/1.1 400 ") and message in answer


def test_a_well_formed_chunked_body_is_read(fake):
    answer = raw(fake, f"POST /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nTransfer-Encoding: chunked\r\n"
                       f"Connection: close\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 400 ")


# -- slow, vanishing and broken clients: one line each, no traceback ------------------------------------------
def test_a_client_that_stalls_in_its_headers_is_disconnected_with_one_line(fake, capfd):
    before = len(fake.problems)
    answer = raw(fake, f"GET /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\n".encode())   # no blank line
    assert answer == b""
    line, = problems_after(fake, before)
    assert line.endswith("the client sent nothing for 2 s in the middle of a request: connection closed")
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_stalls_in_its_body_is_disconnected_with_one_line(fake, capfd):
    before = len(fake.problems)
    answer = raw(fake, f"POST /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nContent-Length: 100\r\n\r\n"
                       f"0123456789".encode())
    assert answer == b""
    line, = problems_after(fake, before)
    assert line.endswith("POST /discovery: the client sent nothing for 2 s in the middle of the request body: "
                         "connection closed")
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_leaves_in_the_middle_of_its_body_is_one_line(fake, capfd):
    before = len(fake.problems)
    raw(fake, f"POST /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nContent-Length: 100\r\n\r\n"
              f"0123456789".encode(), read=False)
    line, = problems_after(fake, before)
    assert line.endswith("POST /discovery: the client closed the connection after 10 of the 100 bytes of the "
                         "request body")
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_resets_the_connection_is_one_line_and_no_traceback(fake, capfd):
    before = len(fake.problems)
    with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as sock:
        sock.sendall(f"POST /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nContent-Length: 100\r\n\r\n"
                     f"01234".encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    lines = problems_after(fake, before)
    assert len(lines) == 1 and "closed the connection" in lines[0], lines
    assert "Traceback" not in capfd.readouterr().err


def test_garbage_is_refused_with_one_line(fake, capfd):
    before = len(fake.problems)
    answer = raw(fake, b"\x00\x01\x02 garbage\r\n\r\n")
    assert b"400 - Bad request syntax" in answer   # http.server's page (no status line: it took it for HTTP/0.9)
    assert len(problems_after(fake, before)) == 1
    assert "Traceback" not in capfd.readouterr().err


def test_an_idle_keep_alive_connection_is_closed_quietly(fake):
    with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as sock:
        sock.sendall(f"GET /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\n\r\n".encode())
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        before = len(fake.problems)
        while sock.recv(65536):   # the service closes it after request_timeout
            pass
    assert list(fake.problems)[before:] == []


def test_a_tls_connection_is_closed_by_the_service_not_by_the_garbage_collector(fake):
    """Left to the garbage collector, the service's end of a TLS connection stayed open until a collection, and its
    ResourceWarning surfaced in whatever code ran then (a step's contract check, in CI)."""
    context = ssl.create_default_context(cafile=str(fake.ca.ca_file))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(f"GET /discovery HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\nConnection: close\r\n\r\n"
                         .encode())
            answer = b""
            while chunk := sock.recv(65536):  # the service closes its end once it has answered
                answer += chunk
        gc.collect()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert [str(w.message) for w in caught if "SSLSocket" in str(w.message)] == []


# -- amlstep fake-azure ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("port", ["-1", "65536"])
def test_a_port_out_of_range_is_a_usage_error(port):
    result = CliRunner().invoke(fake_azure_command, ["--port", port])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert f"Invalid value for '--port': {port} is not in the range 0<=x<=65535." in result.output


def test_a_state_folder_every_user_may_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    result = CliRunner().invoke(fake_azure_command, ["--state-dir", str(shared)])
    assert result.exit_code == 2
    assert result.output == (f"Error: the state folder {shared} may be written by every user (mode 0777); the fake "
                             f"service runs code it keeps there: give a folder only you may write to\n")


def test_fake_azure_keeps_its_token_and_folders_to_its_user_and_forgets_its_tokens_at_exit(tmp_path):
    """config.json was 0644 and 15 state folders 0777 (umask 0): anyone on the machine could read the token or put
    code where the service runs it."""
    def start(config):
        process = subprocess.Popen([sys.executable, "-c", "from framework.cli import main; main()", "fake-azure",
                                    "--config-out", str(config), "--state-dir", str(tmp_path / "state")],
                                   cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.umask(0))
        deadline = time.monotonic() + 60
        while not config.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert config.exists(), process.communicate(timeout=5)
        data = json.loads(config.read_text())
        return process, {**data["amlstep_fake_service"], "workspace_name": data["workspace_name"]}

    def stop(process):
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "Traceback" not in err

    def status(service, token):
        conn = http.client.HTTPConnection("127.0.0.1", int(service["endpoint"].rsplit(":", 1)[1]), timeout=10)
        conn.request("GET", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft."
                            f"MachineLearningServices/workspaces/{service['workspace_name']}?api-version=2023-04-01",
                     headers={"Authorization": f"Bearer {token}"})
        return conn.getresponse().status

    config = tmp_path / "c.json"
    process, first = start(config)
    try:
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert status(first, first["token"]) == 200
        shared = [str(p) for p in [tmp_path / "state", *(tmp_path / "state").rglob("*")]
                  if not p.is_symlink() and p.stat().st_mode & (stat.S_IWOTH | stat.S_IROTH)]
        assert shared == []
    finally:
        stop(process)
    process, second = start(config)
    try:
        assert status(second, second["token"]) == 200
        assert status(second, first["token"]) == 401   # the token of an earlier start
    finally:
        stop(process)


def test_the_config_is_written_0600_even_over_a_file_others_could_read(tmp_path):
    from emulator.azure_service.command import write_private

    target = tmp_path / "c.json"
    target.write_text("{}")
    target.chmod(0o644)
    write_private(target, '{"token": "t"}\n')
    assert (stat.S_IMODE(target.stat().st_mode), target.read_text()) == (0o600, '{"token": "t"}\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_a_library_fake_keeps_its_state_folder_private(tmp_path):
    with FakeAzureML(execute=False, root=tmp_path / "new" / "state"):
        assert stat.S_IMODE((tmp_path / "new" / "state").stat().st_mode) == 0o700
    assert Path(tmp_path / "new" / "state").exists()   # a folder given is kept
