"""The browser of the tests that look at pages as a person does: Debian's chromium driven through
Playwright's Python API (never `playwright install`, which downloads a browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: `make chromium`, which `make test` runs


def browser_or_skip():
    """Playwright's `sync_playwright`, or a skip saying what is missing (a failure under CI=true)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as missing:
        reason = f"playwright is not installed ({missing}); `make test` installs it"
    else:
        if CHROMIUM.exists():
            return sync_playwright
        reason = f"no {CHROMIUM}; `make chromium` installs Debian's chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs the browser: {reason}")
    pytest.skip(reason)
