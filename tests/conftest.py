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
