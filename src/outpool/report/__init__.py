"""Reports for people: PNG galleries of datasets."""

from outpool.report.gallery import (
    attribute_strip,
    dataset_gallery,
    image_grid,
    pair_grid,
    save_gallery,
)

__all__ = ["attribute_strip", "dataset_gallery", "image_grid", "pair_grid", "save_gallery"]
