"""What the Azure ML SDKs print and raise, in amlstep's terms. SDK-neutral: nothing here imports an SDK.

- :func:`sdk_output`: what an SDK prints goes to the run's echo (or nowhere), never into ``--json``
  output, and its ERROR logs are silenced while amlstep reports the failures that matter itself;
- :class:`ServiceErrors`: the service's message found inside an SDK exception (:meth:`~ServiceErrors.short`)
  and a :class:`BackendError` that says what amlstep was doing and, for a sign-in problem, how to
  sign in (:meth:`~ServiceErrors.error`). Each SDK has one, for the way its exceptions read.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from typing import Any, Iterator, TextIO

from ...errors import BackendError


@contextlib.contextmanager
def sdk_output(echo: TextIO | None) -> Iterator[None]:
    """Send what the SDK prints (upload progress, experimental-class notices) to ``echo`` or nowhere, never into
    ``--json`` output; silence its ERROR logs (a dataset looked up before it is registered logs a 404 at ERROR
    level): amlstep reports the failures that matter itself."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        with contextlib.redirect_stdout(echo if echo is not None else io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def say(echo: Any, message: str) -> None:
    """One line of progress for the user (on ``echo``; nothing without one)."""
    if echo is not None:
        print(message, file=echo, flush=True)


@dataclass(frozen=True)
class ServiceErrors:
    """How one SDK's exceptions read.

    Args:
        markers: where the service's message starts in the exception's text, tried in this order:
            ``'"message": "'`` (a JSON error body the SDK quotes, escaped) or ``"Message: "``.
        stops: after a ``Message:`` marker, what ends the message (azure-core's ``Code:`` lines).
        auth_words: words (lower case) that say the service refused the credentials.
        sign_in: how to sign in again, for the message.
    """

    markers: tuple[str, ...] = ('"message": "', "Message: ")
    stops: tuple[str, ...] = ()
    auth_words: tuple[str, ...] = ("401", "authenticationfailed", "authentication", "unauthorized", "expired",
                                   "invalid_grant", "az login")
    sign_in: str = "`az login`, or the service principal in AZUREML_* variables"

    def short(self, exc: BaseException) -> str:
        """The service's message inside an SDK exception (at most 400 characters)."""
        text = " ".join(str(exc).split())
        for marker in self.markers:
            if marker in text:
                rest = text.split(marker, 1)[1]
                if marker.startswith('"'):  # a JSON string: up to its closing quote, escaped quotes kept
                    text = re.split(r'(?<!\\)"', rest, maxsplit=1)[0]
                else:
                    for stop in self.stops:
                        rest = rest.split(stop, 1)[0]
                    text = rest.split('"', 1)[0]
                break
        text = text.replace("\\'", "'").replace('\\"', '"')
        return text[:400] or type(exc).__name__

    def error(self, doing: str, exc: BaseException) -> BackendError:
        """A BackendError for a failed service call while ``doing``; authentication failures say how to sign in."""
        found = self.sign_in_error(doing, exc)
        if found is not None:
            return found
        text = f"{type(exc).__name__}: {exc}".lower()
        if any(word in text for word in self.auth_words):
            return BackendError(f"Azure authentication failed while {doing}: {self.short(exc)}; sign in again "
                                f"({self.sign_in}) and check that you can access the workspace")
        return self.other_error(doing, exc) or unreachable(doing, exc) or \
            BackendError(f"Azure ML service error while {doing}: {self.short(exc)}")

    def sign_in_error(self, doing: str, exc: BaseException) -> BackendError | None:
        """An SDK's own reading of ``exc`` before the service's answer is looked at (no credential could sign in)."""
        return None

    def other_error(self, doing: str, exc: BaseException) -> BackendError | None:
        """An SDK's own reading of a service error that is not about signing in (a workspace not found)."""
        return None


_UNREACHABLE = ("connection refused", "failed to establish a new connection", "name or service not known",
                "nodename nor servname", "temporary failure in name resolution", "no route to host")


def unreachable(doing: str, exc: BaseException) -> BackendError | None:
    """The error for a service that cannot be reached at all (nothing listens, the name does not resolve), naming
    where it was looked for; None for any other error."""
    text = " ".join(str(item) for item in (exc, exc.__cause__, exc.__context__) if item is not None)
    reason = next((words for words in _UNREACHABLE if words in text.lower()), None)
    if reason is None:
        return None
    found = re.search(r"host='([^']+)', port=(\d+)", text)
    where = f" at {found.group(1)}:{found.group(2)}" if found else ""
    return BackendError(f"could not reach the Azure ML service{where} while {doing} ({reason}); check the network and "
                        f"the workspace's config.json, or, for a local fake, that `amlstep fake-azure` is running")
