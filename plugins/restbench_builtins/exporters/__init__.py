"""Built-in restbench plugins."""
