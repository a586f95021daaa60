"""A run: profiles (core knobs), the plan, steps, content-addressed jobs and their context, the job store,
executors, checkpoints, resuming, latency timing and the pipeline that drives them (the run directory
itself is the record format, :mod:`restbench.records`)."""
