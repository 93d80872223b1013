"""Google Sheets: ``config`` (the mapping's section), ``data`` (pure helpers), ``auth``
(credentials), ``api`` (the HTTP client, retries, Google's errors), ``worksheet`` (the tab and
its whole read), ``source`` (GSheetsSource: read, write_status) and ``export_sink``."""
