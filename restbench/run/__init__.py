"""A run: profiles (core knobs), the pipeline that sequences its steps, the run directory, checkpoints and progress."""
