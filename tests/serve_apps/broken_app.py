"""An app that does not import (tests/test_serve.py)."""

import this_module_does_not_exist  # noqa: F401
