"""Training side: datasets and windows over data/, pre-training, fine-tuning, evaluation."""
