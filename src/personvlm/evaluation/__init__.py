"""Evaluation: caption metrics (COCO toolkit compatible), attribute metrics and the HTML report."""
