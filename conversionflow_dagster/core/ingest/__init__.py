"""Stage 0, ingest: input tables, the event log, spend feed, controls and the weekly panel."""
