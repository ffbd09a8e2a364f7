"""Benchmarks of dispatch-tui against references measured in the same run on the same server.

Run them with `python -m bench [names...]` (see `bench/__main__.py`). They are not part of the
test run: pytest only collects `tests/`, and no file here is named `test_*.py`.
"""
