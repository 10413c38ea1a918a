"""pytest fixtures for tests/manage: see manage_helpers.py."""
from manage_helpers import admin, gateway, httpbin, manage, workroot  # noqa: F401
