"""Method side (torch): networks, MeanFlow and flow-matching objectives, dispersive losses, normalizer, export."""
