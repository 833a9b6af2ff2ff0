"""One module per step, named like its YAML key. Each registers itself with curate.registry."""
