"""Moved: the fake Azure ML service is the package ``emulator.azure_service`` (kept for old imports)."""

from emulator.azure_service import (SDK_ENVIRONMENT, FakeAzureML, fake_authentication, iter_routes,
                                    summarize_submission)

__all__ = ["FakeAzureML", "SDK_ENVIRONMENT", "fake_authentication", "iter_routes",
           "summarize_submission"]
