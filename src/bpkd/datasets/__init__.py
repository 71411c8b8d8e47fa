"""Datasets: specifications of the supported datasets, the embedded synthetic
generator, and the mmseg dataset class that loads it."""
