"""Studies over many compressed models: sweeps and their plan, populations, scrub stops, A/B settings."""
