"""The HTTP edge: request models, problem+json, idempotency, and the route table."""
