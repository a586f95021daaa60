"""Deployment: test-time transforms, export to on-device formats, efficiency counts and latency methodology."""
