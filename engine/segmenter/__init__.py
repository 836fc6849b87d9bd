"""The segmenter: a UNet that turns a real photo into a mask, trained with no labels."""
