"""Models: loading (local path, hub id, tiny configs, the trained zoo), tokenizers and routing adapters."""
