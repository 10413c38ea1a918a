"""pytest fixtures for tests/sync: see sync_helpers.py."""
from sync_helpers import (binary_exists, keydir, make_agent, mgmt, mgmt_key,  # noqa: F401
                          other_key)
