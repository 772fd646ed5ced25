"""Data access: each module owns the SQL of one concept."""
