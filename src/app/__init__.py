"""The service template package: config, logging, metrics, health and the two service loops."""
