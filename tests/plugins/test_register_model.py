from framework import Pipeline, Step, run_pipeline
from plugins.register_model import STEP


def test_registers_a_new_version_each_run(toy_plugins, workspace, capsys):
    pipeline = Pipeline([Step("make_table"), Step("fit", inputs={"table": "table"}),
                         Step("register_model", inputs={"model": "model"}, params={"model_name": "Toy"})])
    first = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    second = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    assert [s.reused for s in second.steps] == [True, True, False]
    models = workspace.list_models()
    assert [(m.name, m.version, m.run_id) for m in models] == [("Toy", 1, first.run_id), ("Toy", 2, second.run_id)]
    log = workspace.path / workspace.get_run(second.step("register_model").run_id).log_path
    assert "Registered version 2 of model Toy" in log.read_text()
    assert workspace.get_metrics(second.step("register_model").run_id) == {"registered_version": 2}


def test_declaration():
    assert STEP.allow_reuse is False
    assert STEP.param("model_name").required
