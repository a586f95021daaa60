"""The restbench plugin hooks. One registrar hook per kind, plus CLI commands.

A plugin module implements any of these with ``@restbench.hookimpl`` and is listed under the
``restbench`` entry-point group of its distribution. Registrar hooks receive a ``register``
callable; the plugin calls ``register(obj)`` once per object it offers, so one hook serves any
number of objects. Each object needs ``id`` (kebab-case), ``version``, ``description`` and
``citation`` (may be ``None``), and the methods of its kind's protocol in :mod:`restbench.api`.
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("restbench")
#: Marks a plugin's implementation of a hook (``@restbench.hookimpl``).
hookimpl = pluggy.HookimplMarker("restbench")

Register = Callable[[object], None]


@hookspec
def register_datasets(register: Register) -> None:
    """Offer datasets.

    Called once when the plugin manager loads, before any command runs.

    :param register: call ``register(dataset)`` for each object satisfying
        :class:`restbench.api.Dataset` (``prepare(options) -> SleepData``).
    """


@hookspec
def register_models(register: Register) -> None:
    """Offer network families.

    Called once when the plugin manager loads.

    :param register: call ``register(model)`` for each :class:`restbench.api.Model`
        (``build(n_times, sfreq, n_classes, spec=None, options=...) -> (module, spec)``; its
        ``inputs`` say the window it takes, its ``options`` its own settings, ``width`` among them).
    """


@hookspec
def register_methods(register: Register) -> None:
    """Offer training configurations (benchmark entries).

    Called once when the plugin manager loads. ``restbench run --methods all`` runs every
    registered method, third-party ones included, except those that set ``in_all = False``.

    :param register: call ``register(method)`` for each :class:`restbench.api.Method`
        (``recipe(context) -> Recipe``).
    """


@hookspec
def register_corruptions(register: Register) -> None:
    """Offer test-time corruptions with named severities.

    Called once when the plugin manager loads.

    :param register: call ``register(corruption)`` for each :class:`restbench.api.Corruption`
        (``severities``, ``needs_model``, ``suite``, ``apply(...)``, ``settings(severity)``).
    """


@hookspec
def register_compressors(register: Register) -> None:
    """Offer model compressors (pruning and the like).

    Called once when the plugin manager loads.

    :param register: call ``register(compressor)`` for each :class:`restbench.api.Compressor`
        (``compress(module, spec, model, options) -> (module, spec, report)``).
    """


@hookspec
def register_exporters(register: Register) -> None:
    """Offer exporters that turn a deployed model into on-device files (TFLite, ONNX, ...).

    Called once when the plugin manager loads. Exporters with ``default = True`` run unless
    ``--exporters`` names others; each exported variant can be timed by runners and, as the
    exporter says, evaluated under corruption.

    :param register: call ``register(exporter)`` for each :class:`restbench.api.Exporter`
        (``available()``, ``export(module, calibration, check_windows, folder, stem, options)
        -> [ExportedVariant]``, ``predict(variant, windows) -> logits``).
    """


@hookspec
def register_runners(register: Register) -> None:
    """Offer device runners that measure latency.

    Called once when the plugin manager loads.

    :param register: call ``register(runner)`` for each :class:`restbench.api.Runner`
        (``available() -> (ok, reason)``, ``measure(artifact, options) -> [LatencyReport]``).
    """


@hookspec
def register_commands(cli) -> None:
    """Add subcommands to the ``restbench`` CLI.

    Called when the CLI starts, after the built-in commands exist.

    :param cli: the root :class:`click.Group`; add commands with ``@cli.command()`` or
        ``cli.add_command(cmd)``.
    """


#: Hook name -> registry kind, for the registrar hooks.
REGISTRAR_HOOKS: dict[str, str] = {
    "register_datasets": "datasets",
    "register_models": "models",
    "register_methods": "methods",
    "register_corruptions": "corruptions",
    "register_compressors": "compressors",
    "register_exporters": "exporters",
    "register_runners": "runners",
}
