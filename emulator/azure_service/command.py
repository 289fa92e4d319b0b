"""``amlstep fake-azure``: serve amlstep's offline Azure ML service on 127.0.0.1, to try the Azure path by hand.

    amlstep fake-azure --config-out c.json &
    amlstep run examples/titanic --backend azure --config c.json
    amlstep run examples/titanic --backend azure --sdk v2 --config c.json    # the same service, SDK v2

The service (``emulator.azure_service``, this package) runs what it is sent: script steps in environments built
as Azure's image build builds them (conda and pip requirements from a package index: PyPI by default,
``--index-url``, ``--find-links``, ``--offline``; the wheels amlstep ships), the AutoML step with the
AutoML emulator, model registration in its registry, outputs in its blob storage. The config.json it
writes is a workspace config with an ``amlstep_fake_service`` section (endpoint, token, the certificate
authority of its blob storage and of its TLS endpoint, its cloud metadata URL) that the Azure backend
recognises, under SDK v1 and SDK
v2: no ``az login``, no network. One service answers both SDKs (the SDK v1 REST API over http, SDK
v2's public ARM API over TLS, on the same port), in front of one engine. State lives in memory and in a
temporary folder (or ``--state-dir``) and ends with the process.

It runs code it is sent, so it trusts only what it issued: the tokens in its config.json are signed
with a secret made at start and held in memory (a token of an earlier start, or one made by hand, is
refused); the config.json is written readable by you alone (0600), and every file and folder the
service makes is too (umask 077): another user of the machine can neither read the token nor put
code where the service would run it.

A plugin of amlstep's CLI (entry point ``fake_azure_command`` of the ``amlstep`` group), as any other command.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from framework import hookimpl


@click.command("fake-azure")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: a free port).")
@click.option("--config-out", type=click.Path(dir_okay=False), default=None,
              help="Write the workspace config.json for the service here.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Keep blobs, runs and built environments here (default: a temporary folder, removed at exit).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Keep built environments here, for later starts too (default: in the state folder). An "
                   "environment on another Python, or a curated one built from its definition, is 0.5-1 GB.")
@click.option("--compute", "computes", multiple=True, default=("cpu-cluster",), show_default=True,
              help="Compute clusters that exist at start (repeat the option for several).")
@click.option("--sdk", type=click.Choice(["v1", "v2"]), default="v1", show_default=True,
              help="The SDK you will use (both are served; this picks the endpoint and the hint shown).")
@click.option("--index-url", default=None, metavar="URL",
              help="Package index for environment builds (default: pip's configuration, i.e. PyPI, as Azure's "
                   "image build uses).")
@click.option("--find-links", "find_links", multiple=True, metavar="PATH_OR_URL",
              help="Also look for packages here: a folder of wheels or a URL (repeatable).")
@click.option("--offline", is_flag=True, default=False,
              help="No package index: environments get only what the fake has and the --find-links hold.")
@click.option("--python", "pythons", multiple=True, metavar="VERSION=PATH",
              help="Build environments that ask for this Python version on this interpreter (repeatable; by default "
                   "the machine's python3.X on PATH and pyenv's versions are used).")
@click.option("--web-file", "web_files", multiple=True, metavar="URL=PATH",
              help="Serve this local file where a job reads this public URL (repeatable); other URLs are fetched "
                   "when the step starts, as Azure does.")
@click.option("--no-web-fetch", "no_web_fetch", is_flag=True, default=False,
              help="Never fetch a public URL a job reads: a step reading one not given by --web-file fails naming it.")
def fake_azure_command(port: int, config_out: str | None, state_dir: str | None, computes: tuple[str, ...],
                       sdk: str, index_url: str | None, find_links: tuple[str, ...], offline: bool,
                       web_files: tuple[str, ...], no_web_fetch: bool, pythons: tuple[str, ...] = (),
                       cache_dir: str | None = None) -> None:
    """Serve an offline Azure ML workspace on 127.0.0.1.

    The fake service runs what it is sent, until Ctrl-C.
    """
    from .service import FakeAzureML

    os.umask(0o077)  # what the service keeps (code it runs, its certificate keys, the config): for this user only
    served = {}
    for item in web_files:
        url, sep, path = item.partition("=")
        if not sep or not url or not path:
            raise click.BadParameter(f"{item!r}: expected URL=PATH", param_hint="--web-file")
        if not Path(path).is_file():
            raise click.BadParameter(f"{path!r} is not a file", param_hint="--web-file")
        served[url] = path
    interpreters = _interpreters(pythons)
    try:
        service = FakeAzureML(computes=tuple(computes), root=state_dir, port=port, index_url=index_url,
                              find_links=find_links, offline=offline, web_files=served,
                              web_fetch=not no_web_fetch, pythons=interpreters, cache_dir=cache_dir).start()
    except ValueError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"Error: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    config = service.config()
    if config_out:
        try:
            write_private(Path(config_out), json.dumps(config, indent=2) + "\n")
        except OSError as exc:
            service.stop()
            click.echo(f"Error: cannot write the workspace config {config_out}: {exc.strerror or exc}", err=True)
            sys.exit(2)
    url = service.tls_url if sdk == "v2" else service.base_url
    click.echo(f"fake Azure ML workspace {service.workspace_name!r} serving on {url}")
    click.echo(f"environments install packages from {service.compute.index.describe()}")
    if config_out:
        click.echo(f"workspace config: {config_out}")
        flag = " --sdk v2" if sdk == "v2" else ""
        click.echo(f"try: amlstep run examples/titanic --backend azure{flag} --config {config_out}")
    else:
        click.echo("workspace config (save it and pass it with --config):")
        click.echo(json.dumps(config, indent=2))
    click.echo("press Ctrl-C to stop", err=True)
    sys.stdout.flush()
    stopped = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopped.set()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.stop()
        if config_out:
            Path(config_out).unlink(missing_ok=True)
        click.echo("fake Azure ML service stopped", err=True)


def write_private(target: Path, text: str) -> None:
    """Write ``target`` readable by its owner only (0600; it holds the service's token), replacing it at once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover of a killed start may have other permissions
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(fake_azure_command)


def _interpreters(given: tuple[str, ...]) -> dict[str, Path]:
    """The machine's interpreters by version, with ``--python VERSION=PATH`` over them."""
    import re

    from .compute import find_pythons

    found = find_pythons()
    for item in given:
        version, sep, path = item.partition("=")
        if not sep or not re.fullmatch(r"3\.\d+", version.strip()):
            raise click.BadParameter(f"{item!r}: expected VERSION=PATH, e.g. 3.8=/usr/bin/python3.8",
                                     param_hint="--python")
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise click.BadParameter(f"{path!r} is not an executable file", param_hint="--python")
        found[version.strip()] = Path(path)
    return found
