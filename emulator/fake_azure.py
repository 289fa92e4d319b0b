"""Moved: the fake Azure ML service is the package ``emulator.azure_service`` (kept for old imports)."""

from emulator.azure_service import (FAKE_TOKEN, SDK_ENVIRONMENT, FakeAzureML, fake_authentication, iter_routes,
                                    summarize_submission)

__all__ = ["FAKE_TOKEN", "FakeAzureML", "SDK_ENVIRONMENT", "fake_authentication", "iter_routes",
           "summarize_submission"]
