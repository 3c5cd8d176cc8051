#!/usr/bin/env bash
# The playground's browser tests: a real headless Chromium driven over WebDriver types queries
# into the page at GET / and checks the hits (and that a reader's token never shows documents
# outside its ACL); a screenshot lands in the target directory's tmp/playground.png.
# Needs Debian's chromium and chromium-driver (`sudo apt-get install chromium chromium-driver`);
# without them the tests fail, they do not skip. Not part of .ci/run (see README).
#   ./scripts/browser-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null || {
    echo "$tool is not installed: sudo apt-get install chromium chromium-driver" >&2
    exit 1
  }
done
cargo test --test it playground -- --include-ignored
