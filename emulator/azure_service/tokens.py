"""The fake service's credentials: the tokens, SAS signatures and capability URLs it issues, and only those.

The fake service executes what it is sent, so who may send is the one thing it must get right. Each
instance draws a random secret when it is created (32 bytes from :mod:`secrets`, held in memory only:
nothing on disk to steal, and everything signed with it dies with the process) and signs with it:

- **bearer tokens**: JWTs shaped like the ones Entra ID hands out (``tid``, ``oid``, ``upn``, ``aud``,
  ``exp``...), signed with HMAC-SHA256 (``alg: HS256``). A request's token must carry this instance's
  signature and must not have expired: an unsigned token (``alg: none``), another algorithm, another
  instance's token or a forged one is refused with 401 in the API's error shape. The workspace config
  ``amlstep fake-azure`` writes carries the tokens its clients send; the run tokens of the steps it
  executes (``AZUREML_RUN_TOKEN``, ``MLFLOW_TRACKING_TOKEN``, on-behalf-of tokens) are signed the same way.
- **SAS signatures** (``sig=``) on the blob URLs it hands out: one per instance; the blob store refuses
  any other (Azure's 403 ``AuthenticationFailed``).
- **capabilities**: the on-behalf-of token endpoint a job with the user's identity calls is reached
  through a URL that carries a MAC of the job's run id (azure-ai-ml's ``AzureMLOnBehalfOfCredential``
  sends no credentials there; Azure serves that endpoint on the job's own node).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Any, Callable, Mapping

ALGORITHM = "HS256"
APP_ID = "amlstep-fake"
OBJECT_ID = "33333333-3333-3333-3333-333333333333"
USER = "fake@example.com"
#: what the config token says when it is refused (where a valid one comes from)
WHERE_FROM = ("the fake service accepts only the tokens it issued: use the token of the config.json `amlstep "
              "fake-azure` wrote (each start makes new ones)")


def b64(data: Mapping[str, Any]) -> str:
    """A JWT segment: JSON, base64url without padding."""
    return _b64(json.dumps(data, separators=(",", ":")).encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """What one fake service instance signs and checks (see the module's docstring).

    Args:
        tenant: the tenant id the tokens carry (``tid``).
        secret: the signing secret (random by default: tests pass one only to check a foreign signature).
        clock: wall-clock seconds (``exp`` is wall-clock time, as in any JWT).
    """

    def __init__(self, tenant: str, secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self.tenant = tenant
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock
        self._sas = _b64(self._derive(b"sas"))  # URL-safe as it is: no '+', '/' or '=' to be re-encoded on the way

    def _derive(self, purpose: bytes) -> bytes:
        return hmac.new(self._secret, b"amlstep-fake-azure\0" + purpose, hashlib.sha256).digest()

    # -- bearer tokens --------------------------------------------------------------------------------
    def issue(self, subject: str = USER, *, audience: str | None = None, lifetime: float = 24 * 3600) -> str:
        """A signed JWT for ``subject`` (an audience when the client checks it: azure-ai-ml does for Azure ML's)."""
        now = int(self._clock())
        claims: dict[str, Any] = {"iss": f"https://sts.fake-azure.invalid/{self.tenant}/", "iat": now, "nbf": now - 300,
                                  "exp": int(now + lifetime), "tid": self.tenant, "oid": OBJECT_ID, "upn": subject,
                                  "appid": APP_ID}
        if audience is not None:
            claims["aud"] = audience.rstrip("/")
        signing_input = f"{b64({'alg': ALGORITHM, 'typ': 'JWT'})}.{b64(claims)}"
        return f"{signing_input}.{_b64(self._sign(signing_input))}"

    def _sign(self, signing_input: str) -> bytes:
        return hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()

    def problem(self, authorization: str | None) -> tuple[str, str] | None:
        """None when ``authorization`` is ``Bearer <a token this instance issued, unexpired>``; else (code, message)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return "AuthenticationFailed", ("Authentication failed: the request has no bearer token "
                                            "(Authorization: Bearer <access token>)")
        token = authorization.split(" ", 1)[1].strip()
        invalid = "InvalidAuthenticationToken", "The access token is invalid."
        parts = token.split(".")
        if len(parts) != 3:
            return invalid
        try:
            header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, binascii.Error):
            return invalid
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return invalid
        algorithm = header.get("alg")
        if algorithm != ALGORITHM:
            what = "not signed (alg 'none')" if str(algorithm).lower() == "none" else \
                f"signed with {algorithm!r}, not by this service"
            return "InvalidAuthenticationToken", f"The access token is invalid: it is {what}; {WHERE_FROM}."
        if not hmac.compare_digest(signature, self._sign(f"{parts[0]}.{parts[1]}")):
            return "InvalidAuthenticationToken", ("The access token is invalid: its signature does not verify (a "
                                                  f"forged token, or one of another instance); {WHERE_FROM}.")
        try:
            expires = float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            return invalid
        if expires < self._clock():
            return "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time."
        return None

    # -- blob storage ---------------------------------------------------------------------------------
    @property
    def sas_signature(self) -> str:
        """The ``sig`` of every SAS this instance hands out (URL-safe: it appears in a query as it is)."""
        return self._sas

    def blob_problem(self, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> tuple[int, str, str] | None:
        """None when a blob request carries this instance's SAS or one of its bearer tokens; else (status, code, message).

        A request with neither is left to the blob store (403 ``NoAuthenticationInformation``).
        """
        signatures = query.get("sig") or []
        if signatures:
            if hmac.compare_digest(signatures[0].encode(), self._sas.encode()):
                return None
            return 403, "AuthenticationFailed", ("Server failed to authenticate the request. Make sure the value of "
                                                 "Authorization header is formed correctly including the signature. "
                                                 "(the SAS signature is not one this fake service issued)")
        authorization = headers.get("authorization")
        if not authorization:
            return None
        if authorization.lower().startswith("bearer "):
            if self.problem(authorization) is None:
                return None
            return 401, "InvalidAuthenticationInfo", ("Server failed to authenticate the request. Please refer to "
                                                      "the information in the www-authenticate header. (the bearer "
                                                      "token is not one this fake service issued)")
        return 403, "AuthenticationFailed", ("Server failed to authenticate the request. Make sure the value of "
                                             "Authorization header is formed correctly including the signature. "
                                             "(the fake service hands out no account keys: use the SAS it gives)")

    # -- capabilities ---------------------------------------------------------------------------------
    def capability(self, purpose: str) -> str:
        """A URL-safe MAC of ``purpose`` (for a URL only those told may use)."""
        return _b64(self._derive(b"capability\0" + purpose.encode()))

    def has_capability(self, purpose: str, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.capability(purpose).encode())
