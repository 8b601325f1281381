"""The attribution-scoped report: its numbers, figures, inputs and the HTML page."""
