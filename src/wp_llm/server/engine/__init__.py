"""The delivery engine: claims due deliveries, signs and sends them, records each attempt."""
