"""ParkTwin hydraulics layer."""
