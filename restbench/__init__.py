"""restbench: a plugin-based benchmark of noise-robust, efficient sleep-staging networks."""

from restbench.plugins.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
