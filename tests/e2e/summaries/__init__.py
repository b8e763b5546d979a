# The summary end-to-end tests: a package, like tests/e2e/collector, so that its conftest and
# modules do not shadow tests/e2e/conftest.py.
