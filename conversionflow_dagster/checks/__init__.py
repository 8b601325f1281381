"""Asset checks; blocking ones stop everything downstream when they fail."""
