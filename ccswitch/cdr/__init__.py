"""Call detail records: the SQLite store and the KPI report."""
