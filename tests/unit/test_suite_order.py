"""The suite runs unit tests first: a broken change fails in minutes, before any Ray starts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

TESTS = Path(__file__).resolve().parents[1]


def test_unit_tests_are_collected_before_integration_and_gpu_tests(pytestconfig):
    (conftest,) = [p for p in pytestconfig.pluginmanager.get_plugins()
                   if Path(getattr(p, "__file__", "") or "") == TESTS / "conftest.py"]
    names = ["gpu/test_cuda_memory.py", "integration/test_a.py", "integration/test_b.py", "unit/test_z.py",
             "unit/test_a.py"]
    items = [SimpleNamespace(path=TESTS / n, name=n) for n in names]

    conftest.pytest_collection_modifyitems(pytestconfig, items)

    assert [i.name for i in items] == ["unit/test_z.py", "unit/test_a.py", "integration/test_a.py",
                                       "integration/test_b.py", "gpu/test_cuda_memory.py"]  # stable within a group
