"""The tests: a package, so helper modules are imported by name (`from tests.helpers import ...`)
and `tests/unit/test_x.py` may share a file name with `tests/test_x.py`."""
