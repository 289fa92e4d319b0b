"""How long a whole Titanic submission takes when the fake Azure ML service runs it, vs the local backend.

    python benchmarks/azure_fake.py            # one round
    python benchmarks/azure_fake.py --rounds 3
    python benchmarks/azure_fake.py --sdk v2   # the same through azure-ai-ml (--sdk both: v1 then v2)

Measured in the same process, one after the other, so machine load hits all alike:

- **local**: ``amlstep run examples/titanic`` on the local backend, fresh workspace (the reference);
- **fake, cold**: the first submission of a session — wheels built, the step environment built
  (venv + pip), every step executed (dataprep and register_model as processes from the shipped
  wheel, AutoML service-side), outputs downloaded through the SDK;
- **fake, warm**: a new service and a new local workspace, wheels and environments cached: every
  step executed again;
- **fake, resubmitted**: the same pipeline again on the same service: dataprep and AutoML reused,
  register_model executed.

Prints a markdown table: wall seconds and the ratio to the local run of the same round. Offline:
the service binds 127.0.0.1 and reads ``../shared/data/titanic.csv`` (``AMLSTEP_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def titanic_csv() -> Path:
    return Path(os.environ.get("AMLSTEP_SHARED_DATA", REPO.parent / "shared" / "data")) / "titanic.csv"


def one_round(cache: Path, folder: Path, sdks: tuple[str, ...] = ("v1",)) -> dict[str, float]:
    from framework import LocalWorkspace, get_plugin_manager, load_pipeline, run_pipeline
    from emulator.azure_service.testing import open_fake_azure

    pipeline = REPO / "examples" / "titanic"
    timings: dict[str, float] = {}
    workspace = LocalWorkspace(folder / "local")
    workspace.register_dataset("titanic_ds", [str(titanic_csv())])
    started = time.perf_counter()
    result = run_pipeline(load_pipeline(pipeline), workspace=workspace, plugins=get_plugin_manager())
    timings["local"] = time.perf_counter() - started
    assert result.succeeded, result.error
    for sdk in sdks:
        prefix = "fake" if sdks == ("v1",) else f"fake {sdk}"
        envs = cache / sdk
        for label, state in ((f"{prefix}, cold" if not envs.exists() else f"{prefix}, warm", "a"),
                             (f"{prefix}, warm", "b")):
            with open_fake_azure(folder / f"fake-{sdk}-{state}", cache, sdk=sdk) as fake:
                envs.mkdir(parents=True, exist_ok=True)
                fake.local_workspace.register_dataset("titanic_ds", [str(titanic_csv())])
                started = time.perf_counter()
                result = fake.submit(pipeline)
                timings.setdefault(label, time.perf_counter() - started)
                assert result.status == "Completed", result.error
                if state == "b":
                    started = time.perf_counter()
                    again = fake.submit(pipeline)
                    timings[f"{prefix}, resubmitted"] = time.perf_counter() - started
                    assert [s.reused for s in again.steps] == [True, True, False], again.steps
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sdk", choices=("v1", "v2", "both"), default="v1",
                        help="the Azure ML SDK the submissions go through (both: v1, then v2)")
    args = parser.parse_args(argv)
    sdks = ("v1", "v2") if args.sdk == "both" else (args.sdk,)
    rows: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="amlstep-bench-azure-") as root:
        os.environ["HOME"] = str(Path(root) / "home")
        for index in range(args.rounds):
            cache = Path(root) / f"cache-{index}"          # each round starts cold
            timings = one_round(cache, Path(root) / f"round-{index}", sdks)
            for name, seconds in timings.items():
                rows.setdefault(name, []).append(seconds)
                ratios.setdefault(name, []).append(seconds / timings["local"])
            print(f"round {index + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), flush=True)
    print()
    print("| run | wall seconds (median) | ratio to the local run |")
    print("|---|---|---|")
    for name in rows:
        print(f"| {name} | {statistics.median(rows[name]):.1f} | {statistics.median(ratios[name]):.2f} |")


if __name__ == "__main__":
    main()
