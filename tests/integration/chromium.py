"""Debian's Chromium as the browser tests start it (Playwright's own browser download is never used)."""

import os

CHROMIUM = os.environ.get("D2M_CHROMIUM", "/usr/bin/chromium")
# As the machine's own check starts it: no sandbox as root, and no background calls to Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
