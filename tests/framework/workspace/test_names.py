"""Names and ids as the workspace and its messages use them."""

from __future__ import annotations

from framework.workspace.names import short_id


def test_a_uuid_is_shown_by_its_first_8_characters_and_a_service_made_name_whole():
    assert short_id("72e559bb-00fe-47b6-9232-382058f35756") == "72e559bb"
    assert short_id("267b2157-8e48-45e5-8501-287336917eff_1") == "267b2157"  # an AutoML child of a local run
    assert short_id("dynamic_kiwi_d2dq1dm4cl") == "dynamic_kiwi_d2dq1dm4cl"   # an SDK v2 job: its prefix says nothing
    assert short_id("ivory_kiwi_d2dq1dm4cl") == "ivory_kiwi_d2dq1dm4cl"
