"""ParkTwin kernels layer."""
