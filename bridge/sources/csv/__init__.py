"""CSV files: config, reader and status writer."""
