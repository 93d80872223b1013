"""Google Sheets: config, pure data helpers, reader, status writer and export sink."""
