"""vostutorial: semi-supervised video object segmentation, taught and reproduced."""
