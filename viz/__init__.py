"""ParkTwin viz layer."""
