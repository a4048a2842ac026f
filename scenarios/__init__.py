"""ParkTwin scenarios layer."""
