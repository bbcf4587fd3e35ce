"""FER data: readers, digits stand-in, label noise, class-balanced sampling, splits.

Readers cover RAF-DB, FERPlus, AffectNet, Aff-Wild2 and plain image folders.
"""

from fer_backbone.data.dataset import FERDataset, load_image
from fer_backbone.data.digits import digits_train_test, load_digits_samples
from fer_backbone.data.noise import NoiseReport, inject_label_noise
from fer_backbone.data.readers import (
    read_affectnet,
    read_affwild2,
    read_ferplus,
    read_image_folder,
    read_rafdb,
)
from fer_backbone.data.sampler import (
    ClassBalancedSampler,
    EpochRandomSampler,
    SeededSampler,
    split_key,
)
from fer_backbone.data.samples import Samples
from fer_backbone.data.split import train_val_split

__all__ = [
    "ClassBalancedSampler", "EpochRandomSampler", "FERDataset", "NoiseReport", "Samples", "SeededSampler",
    "digits_train_test", "inject_label_noise", "load_digits_samples", "load_image",
    "read_affectnet", "read_affwild2", "read_ferplus", "read_image_folder", "read_rafdb",
    "split_key", "train_val_split",
]
