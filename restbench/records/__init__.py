"""The run-record format: what a run leaves on disk and how it is checked.

The ground floor that data, training, deploy, run and report all build on (docs/ARCHITECTURE.md):

- :mod:`~restbench.records.atomic`: whole-file writes that a reader never sees half done;
- :mod:`~restbench.records.jsonio`: plain JSON (numpy values, timestamps, named read errors);
- :mod:`~restbench.records.schema`: the record and run.json layouts and their JSON Schemas;
- :mod:`~restbench.records.cells`: records and the result cell each fills;
- :mod:`~restbench.records.confusion`: how a record's macro-F1 follows from its confusion counts;
- :mod:`~restbench.records.provenance`: versions, plugins, commit and machine behind a number;
- :mod:`~restbench.records.rundir`: the run directory (run.json, results.jsonl, artifacts/);
- :mod:`~restbench.records.lock`: one writer per run directory;
- :mod:`~restbench.records.verify`: digests recorded at the end of a run, checked later.

It imports nothing from the rest of restbench but :mod:`restbench.errors` and the version.
"""
