"""Classic label-free baselines Peel's learned masks are measured against (and bootstrap from)."""
