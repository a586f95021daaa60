"""Studies built on runs: each composes the run machinery (plan, jobs, store, pipeline) for one
question, above it and below reporting (docs/ARCHITECTURE.md).

- :mod:`~restbench.studies.search`: the paper's line search of one method option on validation;
- :mod:`~restbench.studies.sweep`: any option grid on validation, as stored jobs on any executor;
- :mod:`~restbench.studies.reproduce`: re-evaluate a finished run from its checkpoints and compare.
"""
