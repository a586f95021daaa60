"""The plugin contract and its tooling.

- :mod:`~restbench.plugins.contract`: the interfaces the harness calls, one per plugin kind;
- :mod:`~restbench.plugins.hookspecs`: the registrar hooks a plugin implements;
- :mod:`~restbench.plugins.options`: typed plugin options, resolved per profile;
- :mod:`~restbench.plugins.registry`: loads the ``restbench`` entry points, one registry per kind;
- :mod:`~restbench.plugins.testing` and :mod:`~restbench.plugins.scaffold`: the conformance kit and
  the ``restbench new-plugin`` templates (they exercise plugins through the run machinery, so they
  sit above it; see docs/ARCHITECTURE.md).

Plugin authors import from :mod:`restbench.api`.
"""
