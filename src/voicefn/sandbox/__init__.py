"""Customer code (advanced mode): static contract checks and the per-language sandboxes."""
