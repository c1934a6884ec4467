"""Training: pairs made from RAW folders (data), the loop (loop), its configuration (config)."""
