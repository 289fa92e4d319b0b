"""The storage account: Blob REST (the subset the SDKs use) over TLS through the service, and plain-http reads."""

from __future__ import annotations

import base64
import hashlib

import pytest

from emulator.azure_service import FakeAzureML
from emulator.azure_service.blobstore import BlobStore, handle


def send(store, method, path, body=b"", query=None, headers=None, authorized=True):
    query = {k: [v] for k, v in (query or {}).items()}
    return handle(store, method, path, query, {k.lower(): v for k, v in (headers or {}).items()}, body,
                  authorized=authorized)


def test_put_get_ranges_list_and_errors(tmp_path):
    store = BlobStore(tmp_path, "acct")
    data = b"0123456789" * 10
    status, headers, _ = send(store, "PUT", "/c/a/b.bin", data, headers={"x-ms-blob-type": "BlockBlob"})
    assert status == 201 and headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert send(store, "GET", "/c/a/b.bin")[2] == data
    status, headers, body = send(store, "GET", "/c/a/b.bin", headers={"x-ms-range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, b"0123456789", "bytes 10-19/100")
    send(store, "PUT", "/c/empty", b"")
    status, headers, _ = send(store, "GET", "/c/empty", headers={"x-ms-range": "bytes=0-33554431"})
    assert (status, headers["x-ms-error-code"], headers["Content-Range"]) == (416, "InvalidRange", "bytes */0")
    status, _, listing = send(store, "GET", "/c", query={"restype": "container", "comp": "list", "prefix": "a/"})
    assert status == 200 and b"<Name>a/b.bin</Name>" in listing and b"empty" not in listing
    assert send(store, "GET", "/c/missing")[1]["x-ms-error-code"] == "BlobNotFound"
    status, headers, _ = send(store, "PUT", "/c/x", b"abc", headers={"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})
    assert (status, headers["x-ms-error-code"]) == (400, "Md5Mismatch")
    assert send(store, "GET", "/c/../../etc/passwd")[1]["x-ms-error-code"] == "InvalidResourceName"
    assert send(store, "GET", "/c/a/b.bin", authorized=False)[1]["x-ms-error-code"] == "NoAuthenticationInformation"
    send(store, "PUT", "/c/big", b"one-", query={"comp": "block", "blockid": "MQ=="})
    send(store, "PUT", "/c/big", b"two", query={"comp": "block", "blockid": "Mg=="})
    body = b"<BlockList><Latest>MQ==</Latest><Latest>Mg==</Latest></BlockList>"
    assert send(store, "PUT", "/c/big", body, query={"comp": "blocklist"})[0] == 201
    assert store.get("c", "big") == b"one-two"


def test_clients_reach_the_blob_host_through_the_service_over_tls_with_its_own_ca():
    import requests

    with FakeAzureML(execute=False) as fake:
        fake.blob.put("data", "x.csv", b"a,b\n1,2\n")
        proxies = {"https": fake.base_url}
        ca = str(fake.ca.ca_file)
        url = f"https://{fake.blob.account}.blob.core.windows.net/data/x.csv?sig={fake.tokens.sas_signature}"
        answer = requests.get(url, proxies=proxies, verify=ca, timeout=10)
        assert answer.status_code == 200 and answer.content == b"a,b\n1,2\n"
        # the certificate is trusted only through the service's CA, and only for blob hosts
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, proxies=proxies, timeout=10)
        with pytest.raises(requests.exceptions.ProxyError):
            requests.get("https://login.microsoftonline.com/", proxies=proxies, verify=ca, timeout=10)
        # the MLTable schema the SDK v2 client downloads before registering an mltable: no copy here, a 404 at once
        # (a refused tunnel is a connection error, which the client retries for 4.8 s before it skips its check)
        schema = requests.get("https://azuremlschemasprod.azureedge.net/latest/MLTable.schema.json", proxies=proxies,
                              verify=ca, timeout=10)
        assert schema.status_code == 404 and b"no copy of Microsoft's public schemas" in schema.content
        # what the Rust data runtime reads: the same blobs, read-only, over plain http on 127.0.0.1
        plain = requests.get(f"{fake.base_url}/blob/{fake.blob.account}/data/x.csv", timeout=10)
        assert plain.content == b"a,b\n1,2\n"
        assert requests.put(f"{fake.base_url}/blob/{fake.blob.account}/data/x.csv", data=b"no",
                            timeout=10).status_code == 404
