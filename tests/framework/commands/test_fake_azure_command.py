"""``amlstep fake-azure``: serves the executing fake on 127.0.0.1 and writes a config.json the backend recognises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from framework.backends.azure import endpoint


def test_serves_until_stopped_and_writes_a_config_the_backend_recognises(tmp_path):
    config = tmp_path / "c.json"
    env = {**os.environ, "HOME": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", "from framework.cli import main; main()", "fake-azure",
                                "--config-out", str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not config.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert config.exists(), process.communicate(timeout=5)
        data = json.loads(config.read_text())
        service = endpoint.fake_service(config)
        assert service is not None and service["endpoint"].startswith("http://127.0.0.1:")
        assert data["workspace_name"] == service["workspace_name"] and service["token"].count(".") == 2
        with urllib.request.urlopen(service["endpoint"] + "/discovery", timeout=5) as answer:
            assert json.loads(answer.read())["pipelines"] == service["endpoint"]
        assert endpoint.environment(service)["HTTPS_PROXY"] == service["endpoint"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "serving on http://127.0.0.1:" in out and "fake Azure ML service stopped" in err
    assert not config.exists()


def test_a_regular_config_is_not_taken_for_the_fake(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subscription_id": "s", "resource_group": "r", "workspace_name": "w"}))
    assert endpoint.fake_service(config) is None and endpoint.fake_service(tmp_path) is None
