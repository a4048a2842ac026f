"""ParkTwin api layer."""
