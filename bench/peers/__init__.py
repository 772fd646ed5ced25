"""What Python teams often build instead of a delivery service: a Celery task and an arq job.

Both post the same signed bodies to the same sink, retry failures with growing
delays, and INSERT one row per attempt into PostgreSQL, as a production dispatcher
that keeps a delivery log would.
"""
