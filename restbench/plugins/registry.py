"""Plugin discovery and the registries.

Plugins are modules listed under the ``restbench`` entry-point group. Each is loaded and asked
to register on its own, so one that fails to import or register is isolated: it is recorded as
failed with its error and the rest keep working. ``RESTBENCH_STRICT_PLUGINS=1`` turns any
failure into an error (CI uses it). ``RESTBENCH_PLUGINS_ALLOW`` / ``RESTBENCH_PLUGINS_BLOCK``
hold comma-separated plugin (entry-point) names or distribution names.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from restbench.errors import did_you_mean
from restbench.plugins import hookspecs
from restbench.plugins.contract import (
    KIND_PROTOCOLS,
    KINDS,
    PluginError,
    UsageError,
    validate_id,
)

GROUP = "restbench"

REQUIRED_FIELDS = ("id", "version", "description", "citation")


@dataclass
class PluginStatus:
    """One plugin as ``restbench plugins`` reports it."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    hooks: list[str] = field(default_factory=list)
    status: str = "ok"  # "ok", "failed", "blocked"
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "hooks": self.hooks,
            "status": self.status,
            "error": self.error,
            "registered": self.registered,
        }


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def strict_mode() -> bool:
    return os.environ.get("RESTBENCH_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


class Registry:
    """Every registered object by kind and id, plus each plugin's status."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, object]] = {kind: {} for kind in KINDS}
        self.owner: dict[tuple[str, str], str] = {}
        self.plugins: list[PluginStatus] = []
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)

    # ---------------------------------------------------------------- loading

    def load_entry_points(self) -> None:
        allow, block = _env_list("RESTBENCH_PLUGINS_ALLOW"), _env_list("RESTBENCH_PLUGINS_BLOCK")
        eps = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
        for ep in eps:
            dist = ep.dist.name if ep.dist is not None else None
            status = PluginStatus(
                name=ep.name,
                distribution=dist,
                version=ep.dist.version if ep.dist is not None else None,
                module=ep.value,
            )
            self.plugins.append(status)
            names = {ep.name, dist} - {None}
            if (allow and not names & allow) or names & block:
                status.status = "blocked"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # any import error must not break the CLI
                self._fail(status, f"import failed: {type(exc).__name__}: {exc}", exc)
                continue
            self.add_plugin(module, status)

    def add_plugin(self, module: ModuleType | object, status: PluginStatus | None = None) -> PluginStatus:
        """Register one plugin object (module or instance with hookimpls) and run its registrars."""
        if status is None:
            name = getattr(module, "__name__", type(module).__name__)
            status = PluginStatus(name=name, distribution=None, version=None, module=name)
            self.plugins.append(status)
        try:
            self.pm.register(module, name=status.name)
            self.pm.check_pending()  # a misspelled hook name is an error, not silence
        except Exception as exc:
            self._unregister(status)
            self._fail(status, f"invalid hooks: {exc}", exc)
            return status
        impls = self._impls_of(status.name)
        status.hooks = sorted({hook_name for hook_name, _ in impls})
        for hook_name, kind in hookspecs.REGISTRAR_HOOKS.items():
            for impl in (impl for name, impl in impls if name == hook_name):
                added: list[str] = []
                try:
                    impl.function(register=lambda obj, kind=kind, added=added: self._register(kind, obj, status, added))
                except Exception as exc:
                    self._rollback(status)
                    self._fail(status, f"{hook_name} failed: {type(exc).__name__}: {exc}", exc)
                    return status
                if added:
                    status.registered.setdefault(kind, []).extend(added)
        return status

    def _impls_of(self, name: str) -> list[tuple[str, object]]:
        """``(hook name, hookimpl)`` for each hook the named plugin implements."""
        plugin = self.pm.get_plugin(name)
        if plugin is None:
            return []
        return [(caller.name, impl) for caller in self.pm.get_hookcallers(plugin) or []
                for impl in caller.get_hookimpls() if impl.plugin is plugin]

    def _register(self, kind: str, obj: object, status: PluginStatus, added: list[str]) -> None:
        for attr in REQUIRED_FIELDS:
            if not hasattr(obj, attr):
                raise PluginError(f"{kind} object {obj!r} has no '{attr}'")
        oid = validate_id(obj.id)
        protocol = KIND_PROTOCOLS[kind]
        if not isinstance(obj, protocol):
            raise PluginError(f"{kind} object '{oid}' does not satisfy {protocol.__name__}")
        if oid in self.objects[kind]:
            other = self.owner[(kind, oid)]
            raise PluginError(f"duplicate {kind} id '{oid}': registered by both plugin '{other}' and plugin '{status.name}'")
        self.objects[kind][oid] = obj
        self.owner[(kind, oid)] = status.name
        added.append(oid)

    def _rollback(self, status: PluginStatus) -> None:
        for (kind, oid), owner in list(self.owner.items()):
            if owner == status.name:
                del self.objects[kind][oid]
                del self.owner[(kind, oid)]
        status.registered = {}
        self._unregister(status)

    def _unregister(self, status: PluginStatus) -> None:
        if self.pm.get_plugin(status.name) is not None:
            self.pm.unregister(name=status.name)

    def _fail(self, status: PluginStatus, message: str, exc: Exception) -> None:
        status.status, status.error = "failed", message
        if strict_mode():
            raise PluginError(f"plugin '{status.name}' failed (RESTBENCH_STRICT_PLUGINS=1): {message}") from exc
        if os.environ.get("RESTBENCH_DEBUG"):
            traceback.print_exception(exc)

    # ---------------------------------------------------------------- lookup

    def all(self, kind: str) -> dict[str, object]:
        if kind not in self.objects:
            raise UsageError(f"unknown kind '{kind}'{did_you_mean(kind, KINDS)}; valid kinds: {', '.join(KINDS)}")
        return dict(self.objects[kind])  # registration order: a plugin lists its objects as it means them

    def get(self, kind: str, oid: str, option: str | None = None):
        objects = self.all(kind)
        if oid not in objects:
            valid = ", ".join(objects) or "(none registered)"
            where = f"{option}: " if option else ""
            raise UsageError(f"{where}unknown {kind[:-1]} id '{oid}'{did_you_mean(oid, objects)}; valid ids: {valid}")
        return objects[oid]

    def resolve(self, kind: str, ids: str | list[str], option: str | None = None) -> list:
        """Objects for a comma-separated id list or ``all``: every object of ``kind`` except those
        that set ``in_all = False`` (an alias that would repeat another's work, or a reference
        such as YASA); naming one selects it, also beside ``all`` (``all,yasa``)."""
        if isinstance(ids, str):
            ids = [i.strip() for i in ids.split(",") if i.strip()]
        out: list = []
        for i in ids:
            chosen = [obj for obj in self.all(kind).values() if in_all(obj)] if i == "all" else [self.get(kind, i, option)]
            out += [obj for obj in chosen if obj not in out]
        return out

    def defaults(self, kind: str) -> list:
        """Objects of ``kind`` that mark themselves ``default = True``, in registration order."""
        return [obj for obj in self.all(kind).values() if getattr(obj, "default", False) is True]

    def default_id(self, kind: str, option: str) -> str:
        """The one default object of ``kind`` (used when ``option`` is not given)."""
        found = self.defaults(kind)
        if len(found) != 1:
            which = ", ".join(o.id for o in found) or "none"
            raise UsageError(f"{option}: no single default {kind[:-1]} is installed (marked default: {which}); "
                             f"name one with {option}")
        return found[0].id

    def owner_of(self, kind: str, oid: str) -> PluginStatus | None:
        name = self.owner.get((kind, oid))
        return next((p for p in self.plugins if p.name == name), None)


def in_all(obj: object) -> bool:
    """Whether ``all`` selects ``obj``: yes unless it sets ``in_all = False``."""
    return getattr(obj, "in_all", True) is not False


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        registry = Registry()
        registry.load_entry_points()
        _REGISTRY = registry
    return _REGISTRY


def reset_registry(registry: Registry | None = None) -> None:
    """Replace (or drop, to reload on next use) the process-wide registry. For tests."""
    global _REGISTRY
    _REGISTRY = registry
