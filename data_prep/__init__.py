"""Offline dataset preparation: turns contest folders or photo folders into validated WebDataset shards."""
