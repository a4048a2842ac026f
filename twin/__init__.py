"""ParkTwin twin layer."""
