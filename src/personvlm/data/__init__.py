"""Data: the synthetic pedestrian renderer, the MSP60K loader, the vocabulary and transforms."""
