"""The fake service's storage account: blobs as files, the Blob REST subset the SDKs use, and TLS.

The Azure ML SDKs build blob URLs as ``https://<account>.blob.core.windows.net/<container>/<blob>``
(``azureml/_file_utils/upload.py``, ``AzureBlobDatastore`` in ``azureml/data/azure_storage_datastore.py``:
the scheme and host suffix are fixed, whatever the datastore says). So clients reach this store
through ``HTTPS_PROXY`` pointed at the fake: the fake answers ``CONNECT`` and terminates TLS with a
certificate for ``*.blob.core.windows.net`` signed by a certificate authority made for this
service instance (clients trust it through ``REQUESTS_CA_BUNDLE``). Nothing is signed by anyone
else and the private keys never leave the service's folder.

The Rust data runtime behind ``TabularDataset.to_pandas_dataframe`` (rslex) ignores proxies, so the
same blobs are also served read-only over plain HTTP on 127.0.0.1 (``/blob/<account>/<container>/...``)
for the dataset definitions the service hands out.

Operations: Put Blob, Put Block, Put Block List, Get Blob (ranges), Get Blob Properties, Delete
Blob, List Blobs, Create Container. Every request must carry a SAS (``sig=``) or an
``Authorization`` header, as a private container requires; signatures are not verified.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import ipaddress
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

BLOB_HOST_SUFFIX = ".blob.core.windows.net"
#: Where the SDK v2 client downloads the MLTable JSON schema before it registers an mltable data asset
#: (azure.ai.ml's ``MLTABLE_METADATA_SCHEMA_URL_FALLBACK``): a public CDN, not the workspace.
SCHEMA_HOSTS = ("azuremlschemasprod.azureedge.net", "azuremlschemas.azureedge.net")
API_VERSION = "2021-08-06"


class BlobError(Exception):
    """A storage error answered as Azure does: status, ``x-ms-error-code`` and an XML body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class BlobStore:
    """Blobs kept as files under ``root/<account>/<container>/<blob name>``.

    Nothing else lives in those folders: blob metadata is kept apart (``root/.metadata/...``) and
    uploads are written elsewhere first (``root/.partial``), so a folder of blobs given to a step is
    exactly the blobs, as a mounted or downloaded folder is on Azure.
    """

    def __init__(self, root: Path, account: str) -> None:
        self.root = Path(root)
        self.account = account
        self._lock = threading.RLock()
        self._blocks: dict[tuple[str, str], dict[str, bytes]] = {}

    # -- paths ---------------------------------------------------------------------------------
    def container_dir(self, container: str) -> Path:
        return self.root / self.account / container

    def path(self, container: str, name: str) -> Path:
        """The file holding blob ``name`` (``..`` and absolute names are refused)."""
        clean = name.strip("/")
        parts = [p for p in clean.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise BlobError(400, "InvalidResourceName", f"The specifed resource name contains invalid characters: "
                                                        f"{name!r}")
        return self.container_dir(container).joinpath(*parts)

    def url(self, container: str, name: str) -> str:
        """The public https URL of a blob (what the SDKs use)."""
        return f"https://{self.account}{BLOB_HOST_SUFFIX}/{container}/{quote(name.strip('/'))}"

    # -- content -------------------------------------------------------------------------------
    def put(self, container: str, name: str, data: bytes) -> Path:
        target = self.path(container, name)
        with self._lock:
            if target.is_dir():
                raise BlobError(409, "InvalidBlobOrBlock", f"{name!r} is a virtual folder holding other blobs")
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = self.root / ".partial"
            staging.mkdir(parents=True, exist_ok=True)
            partial = staging / f"{os.getpid()}.{threading.get_ident()}"
            partial.write_bytes(data)
            os.replace(partial, target)
            self.metadata_path(container, name).unlink(missing_ok=True)   # Put Blob replaces the metadata
        return target

    def metadata_path(self, container: str, name: str) -> Path:
        """Where a blob's metadata is kept: outside the container's folder, never beside the blob."""
        relative = self.path(container, name).relative_to(self.root)
        return self.root / ".metadata" / relative.parent / f"{relative.name}.json"

    def set_metadata(self, container: str, name: str, metadata: Mapping[str, str]) -> None:
        """Blob metadata (``x-ms-meta-*``), kept beside the blob (the SDK v2 marks finished uploads with it)."""
        import json

        if not self.exists(container, name):
            raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
        target = self.metadata_path(container, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(dict(metadata)))

    def get_metadata(self, container: str, name: str) -> dict[str, str]:
        import json

        path = self.metadata_path(container, name)
        return json.loads(path.read_text()) if path.is_file() else {}

    def put_file(self, container: str, name: str, source: Path) -> Path:
        return self.put(container, name, Path(source).read_bytes())

    def get(self, container: str, name: str) -> bytes:
        target = self.path(container, name)
        if not target.is_file():
            raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
        return target.read_bytes()

    def exists(self, container: str, name: str) -> bool:
        try:
            return self.path(container, name).is_file()
        except BlobError:
            return False

    def names(self, container: str, prefix: str = "") -> list[str]:
        """Blob names under ``prefix``, sorted (folders are virtual, as in Azure)."""
        base = self.container_dir(container)
        if not base.is_dir():
            return []
        names = []
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                name = path.relative_to(base).as_posix()
                if name.startswith(prefix):
                    names.append(name)
        return names

    def delete(self, container: str, name: str) -> None:
        target = self.path(container, name)
        if not target.is_file():
            raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
        target.unlink()
        self.metadata_path(container, name).unlink(missing_ok=True)

    def copy_tree(self, container: str, prefix: str, destination: Path) -> list[Path]:
        """Copy the blobs under ``prefix`` into ``destination`` (a download)."""
        written = []
        for name in self.names(container, prefix.strip("/")):
            relative = name[len(prefix.strip("/")):].lstrip("/") or Path(name).name
            target = Path(destination) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path(container, name), target)
            written.append(target)
        return written

    # -- blocks (uploads larger than the SDK's single-put size) ---------------------------------
    def put_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        with self._lock:
            self._blocks.setdefault((container, name), {})[block_id] = data

    def commit_blocks(self, container: str, name: str, block_ids: list[str]) -> Path:
        with self._lock:
            staged = self._blocks.pop((container, name), {})
            missing = [b for b in block_ids if b not in staged]
            if missing:
                raise BlobError(400, "InvalidBlockList", f"The specified block list is invalid: block {missing[0]!r} "
                                                         f"was never uploaded")
            return self.put(container, name, b"".join(staged[b] for b in block_ids))


# -- the Blob REST protocol ------------------------------------------------------------------------
def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def _etag(path: Path) -> str:
    stat = path.stat()
    return f'"0x{int(stat.st_mtime_ns):X}{stat.st_size:X}"'


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - the protocol's checksum


def error_response(exc: BlobError) -> tuple[int, dict[str, str], bytes]:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{exc.code}</Code><Message>{escape(exc.message)}\n'
            f"RequestId:00000000-0000-0000-0000-000000000000\nTime:{now}</Message></Error>").encode()
    return exc.status, {"x-ms-error-code": exc.code, "Content-Type": "application/xml"}, body


def handle(store: BlobStore, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str],
           body: bytes, *, authorized: bool) -> tuple[int, dict[str, str], bytes]:
    """One Blob REST request (``path`` is ``/<container>/<blob>``); returns status, headers, body."""
    try:
        if not authorized:
            raise BlobError(403, "NoAuthenticationInformation",
                            "Server failed to authenticate the request. Please refer to the information in the "
                            "www-authenticate header.")
        container, _, name = unquote(path).lstrip("/").partition("/")
        if not container:
            raise BlobError(400, "InvalidUri", "The requested URI does not represent any resource on the server.")
        q = {k: v[0] for k, v in query.items()}
        base = {"x-ms-version": API_VERSION, "x-ms-request-id": "00000000-0000-0000-0000-000000000000"}
        if q.get("restype") == "container":
            return _container(store, method, container, q, base)
        if method == "PUT" and q.get("comp") == "metadata":
            store.set_metadata(container, name, _metadata_headers(headers))
            target = store.path(container, name)
            return 200, {**base, "ETag": _etag(target), "Last-Modified": _http_date(target.stat().st_mtime),
                         "x-ms-request-server-encrypted": "true"}, b""
        if method == "PUT" and q.get("comp") == "block":
            store.put_block(container, name, q["blockid"], body)
            return 201, {**base, "Content-MD5": _md5(body)}, b""
        if method == "PUT" and q.get("comp") == "blocklist":
            ids = re.findall(r"<(?:Latest|Committed|Uncommitted)>([^<]*)</", body.decode())
            target = store.commit_blocks(container, name, ids)
            if _metadata_headers(headers):
                store.set_metadata(container, name, _metadata_headers(headers))
            return 201, {**base, "ETag": _etag(target), "Last-Modified": _http_date(target.stat().st_mtime),
                         "x-ms-request-server-encrypted": "true"}, b""
        if method == "PUT":
            given = headers.get("content-md5")
            if given and given != _md5(body):
                raise BlobError(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the "
                                                    "MD5 value calculated by the server.")
            target = store.put(container, name, body)
            if _metadata_headers(headers):
                store.set_metadata(container, name, _metadata_headers(headers))
            return 201, {**base, "ETag": _etag(target), "Last-Modified": _http_date(target.stat().st_mtime),
                         "Content-MD5": _md5(body), "x-ms-request-server-encrypted": "true"}, b""
        if method == "DELETE":
            store.delete(container, name)
            return 202, base, b""
        if method in ("GET", "HEAD"):
            return _read(store, method, container, name, headers, base)
        raise BlobError(405, "UnsupportedHttpVerb", f"The resource doesn't support specified Http Verb {method}.")
    except BlobError as exc:
        return error_response(exc)


def _container(store: BlobStore, method: str, container: str, q: Mapping[str, str],
               base: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    folder = store.container_dir(container)
    if method == "PUT":
        if folder.is_dir():
            raise BlobError(409, "ContainerAlreadyExists", "The specified container already exists.")
        folder.mkdir(parents=True)
        return 201, base, b""
    if method == "GET" and q.get("comp") == "list":
        prefix = q.get("prefix", "")
        names = store.names(container, prefix)
        items = []
        for name in names:
            target = store.path(container, name)
            data = target.read_bytes()
            stat = target.stat()
            items.append(
                f"<Blob><Name>{escape(name)}</Name><Properties><Creation-Time>{_http_date(stat.st_mtime)}"
                f"</Creation-Time><Last-Modified>{_http_date(stat.st_mtime)}</Last-Modified><Etag>{_etag(target)}"
                f"</Etag><Content-Length>{len(data)}</Content-Length><Content-Type>application/octet-stream"
                f"</Content-Type><Content-MD5>{_md5(data)}</Content-MD5><BlobType>BlockBlob</BlobType>"
                f"<AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>"
                f"<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                f"<ServerEncrypted>true</ServerEncrypted></Properties>"
                + ("<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in store.get_metadata(container, name)
                                          .items()) + "</Metadata>" if "metadata" in q.get("include", "") else "")
                + "</Blob>")
        body = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://{store.account}'
                f'{BLOB_HOST_SUFFIX}/" ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix>'
                f"<Blobs>{''.join(items)}</Blobs><NextMarker /></EnumerationResults>").encode()
        return 200, {**base, "Content-Type": "application/xml"}, body
    if method in ("GET", "HEAD"):
        if not folder.is_dir():
            raise BlobError(404, "ContainerNotFound", "The specified container does not exist.")
        return 200, {**base, "ETag": '"0x1"', "Last-Modified": _http_date(folder.stat().st_mtime)}, b""
    raise BlobError(405, "UnsupportedHttpVerb", f"The resource doesn't support specified Http Verb {method}.")


RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _read(store: BlobStore, method: str, container: str, name: str, headers: Mapping[str, str],
          base: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    data = store.get(container, name)
    target = store.path(container, name)
    info = {**base, "ETag": _etag(target), "Last-Modified": _http_date(target.stat().st_mtime),
            "x-ms-creation-time": _http_date(target.stat().st_mtime), "x-ms-blob-type": "BlockBlob",
            "x-ms-server-encrypted": "true", "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
            "x-ms-lease-state": "available", "x-ms-lease-status": "unlocked",
            **{f"x-ms-meta-{k}": v for k, v in store.get_metadata(container, name).items()}}
    wanted = headers.get("x-ms-range") or headers.get("range")
    if wanted and method == "GET":
        match = RANGE.fullmatch(wanted.strip())
        if match is None:
            raise BlobError(400, "InvalidRange", f"The range specified is invalid: {wanted!r}")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(data) - 1
        if start >= len(data):
            status, headers_out, body = error_response(BlobError(416, "InvalidRange",
                                                                 "The range specified is invalid for the current "
                                                                 "size of the resource."))
            return status, {**headers_out, "Content-Range": f"bytes */{len(data)}"}, body
        end = min(end, len(data) - 1)
        chunk = data[start:end + 1]
        out = {**info, "Content-Range": f"bytes {start}-{end}/{len(data)}", "Content-Length": str(len(chunk))}
        if headers.get("x-ms-range-get-content-md5", "").lower() == "true":
            out["Content-MD5"] = _md5(chunk)
        return 206, out, chunk
    out = {**info, "Content-Length": str(len(data)), "Content-MD5": _md5(data)}
    return 200, out, data if method == "GET" else b""


def _metadata_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k[len("x-ms-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}


def is_authorized(query: Mapping[str, list[str]], headers: Mapping[str, str]) -> bool:
    """A SAS (``sig``) or an ``Authorization`` header, as private containers require (not verified)."""
    return bool(query.get("sig")) or bool(headers.get("authorization"))


def parse_blob_url(url: str) -> tuple[str, str, str] | None:
    """``(account, container, blob)`` of an ``https://<account>.blob.core.windows.net/...`` URL."""
    match = re.fullmatch(r"https://([a-z0-9]+)\.blob\.core\.windows\.net/([^/?]+)/([^?]+)(\?.*)?", url.strip())
    if match is None:
        return None
    return match.group(1), match.group(2), unquote(match.group(3))


# -- the certificate authority ---------------------------------------------------------------------
class CertificateAuthority:
    """A throw-away CA and a leaf certificate for ``*.blob.core.windows.net``, made on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._context: Any = None

    @property
    def ca_file(self) -> Path:
        self._ensure()
        return self.folder / "ca.pem"

    def server_context(self) -> Any:
        import ssl

        with self._lock:
            if self._context is None:
                self._ensure()
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(self.folder / "leaf.pem", self.folder / "leaf.key")
                self._context = context
            return self._context

    def _ensure(self) -> None:
        if (self.folder / "ca.pem").is_file() and (self.folder / "leaf.key").is_file():
            return
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "amlstep fake Azure ML service CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
              .not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False),
                             critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        host = "*" + BLOB_HOST_SUFFIX
        leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host), *map(x509.DNSName, SCHEMA_HOSTS),
                                                            x509.DNSName("localhost"),
                                                            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.folder.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        (self.folder / "ca.pem").write_bytes(ca.public_bytes(pem))
        (self.folder / "leaf.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
        key = self.folder / "leaf.key"
        key.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key.chmod(0o600)
