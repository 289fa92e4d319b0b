import pytest

from framework import get_plugin_manager

from tests.toy_steps import Recorder, ToySteps


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def toy_plugins(recorder):
    """A fresh plugin manager: the installed plugins, the toy steps and a recording observer."""
    return get_plugin_manager(plugins=[ToySteps(), recorder])


@pytest.fixture
def toy_env(tmp_path):
    """Environment for a subprocess in which the toy steps are an installed plugin distribution."""
    import os
    import shutil
    from pathlib import Path

    site = tmp_path / "toy-site"
    site.mkdir()
    shutil.copy(Path(__file__).parent / "toy_steps.py", site / "amlstep_toys.py")
    info = site / "amlstep_toys-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: amlstep-toys\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[amlstep]\namlstep_toys = amlstep_toys\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
