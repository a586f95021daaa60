"""One entry point for every kind: :func:`check_object` (``restbench plugin-check ID``)."""

from __future__ import annotations

from restbench.plugins.contract import (
    KIND_PROTOCOLS,
)
from restbench.plugins.testing.common import (
    CheckResult,
    _check_identity,
    _check_options,
)
from restbench.plugins.testing.compressors import check_compressor
from restbench.plugins.testing.corruptions import check_corruption
from restbench.plugins.testing.datasets import check_dataset
from restbench.plugins.testing.deploy import check_exporter, check_runner
from restbench.plugins.testing.methods import check_method
from restbench.plugins.testing.models import check_model

CHECKS = {
    "datasets": check_dataset, "models": check_model, "methods": check_method,
    "corruptions": check_corruption, "compressors": check_compressor, "exporters": check_exporter,
    "runners": check_runner,
}


def check_object(kind: str, obj) -> CheckResult:
    """Every problem found with ``obj`` as a ``kind`` plugin object (empty when it conforms);
    ``result.skipped`` lists the parts that could not run on this machine."""
    result = CheckResult(_check_identity(obj))
    try:
        result.extend(_check_options(obj))
    except Exception as exc:
        result.append(f"options: {type(exc).__name__}: {exc}")
    if not isinstance(obj, KIND_PROTOCOLS[kind]):
        result.append(f"does not satisfy {KIND_PROTOCOLS[kind].__name__}")
        return result
    check = CHECKS.get(kind)
    if check is None:  # a kind without behaviour checks yet: identity, options and protocol only
        return result
    try:
        result.merge(check(obj))
    except Exception as exc:
        result.append(f"raised {type(exc).__name__}: {exc}")
    return result
