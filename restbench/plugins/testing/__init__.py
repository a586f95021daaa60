"""What a plugin author needs to test a plugin (``pytest_plugins = ["restbench.plugins.testing"]``).

- :func:`make_sleep_data`: a tiny, class-separable synthetic :class:`SleepData` built in memory
  in milliseconds (no files, no cache).
- :func:`registry_with`: a fresh registry holding the installed plugins plus the ones you pass,
  installed as the process-wide registry for the duration of a ``with`` block. As a pytest
  fixture: ``restbench_registry`` (add ``pytest_plugins = ["restbench.plugins.testing"]`` to conftest).
- :func:`check_object`: conformance checks for one registered object of any kind; the CLI runs
  them as ``restbench plugin-check ID``. Each kind has its own check (:func:`check_dataset`,
  :func:`check_sleep_data`, :func:`check_model`, :func:`check_method`, :func:`check_corruption`,
  :func:`check_compressor`, :func:`check_runner`) that exercises the object for real on toy
  windows and tiny networks, in well under a few seconds, and returns a :class:`CheckResult`:
  the problems found (``== []`` when the object conforms) and ``skipped``, what could not run
  on this machine (an absent device, dataset files that are not here, a runner that needs
  exported files).
"""

from restbench.plugins.contract import Artifact  # noqa: F401  (runner tests build one)
from restbench.plugins.testing.common import (  # noqa: F401
    N_CLASSES,
    N_TIMES,
    PROFILE,
    SFREQ,
    CheckResult,
    plugin_options,
    profile_knobs,
)
from restbench.plugins.testing.compressors import check_compressor  # noqa: F401
from restbench.plugins.testing.conformance import CHECKS, check_object  # noqa: F401
from restbench.plugins.testing.corruptions import check_corruption  # noqa: F401
from restbench.plugins.testing.datasets import check_dataset, check_sleep_data  # noqa: F401
from restbench.plugins.testing.deploy import check_exporter, check_runner  # noqa: F401
from restbench.plugins.testing.methods import check_method  # noqa: F401
from restbench.plugins.testing.models import build_for_check, check_model  # noqa: F401
from restbench.plugins.testing.toys import make_sleep_data, registry_with  # noqa: F401

__all__ = [
    "make_sleep_data", "registry_with", "check_object", "check_dataset", "check_sleep_data", "check_model",
    "check_method", "check_corruption", "check_compressor", "check_runner", "CheckResult", "plugin_options", "profile_knobs",
    "Artifact",
]

try:  # the fixture exists only where pytest does
    import pytest

    @pytest.fixture
    def restbench_registry():
        """A fresh registry for one test; call ``restbench_registry.add_plugin(module)``."""
        with registry_with() as registry:
            yield registry

except ImportError:  # pragma: no cover
    pass
