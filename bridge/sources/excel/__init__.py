"""Excel workbooks (.xlsx): config, reader and status writer, export sink, xlsx patching."""
