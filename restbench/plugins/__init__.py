"""The plugin contract: hook specifications, the registry, typed plugin options and the
conformance kit plugin authors test with (:mod:`restbench.plugins.testing`)."""

from restbench.plugins.registry import (
    GROUP,
    PluginStatus,
    Registry,
    get_registry,
    hookimpl,
    reset_registry,
    strict_mode,
)

__all__ = ["GROUP", "PluginStatus", "Registry", "get_registry", "hookimpl", "reset_registry", "strict_mode"]
