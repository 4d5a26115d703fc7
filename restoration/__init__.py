"""restoration: restore color images from masked grayscale ones (MAT inpainting + colorization GAN).

Conventions used everywhere (see README): ``known_mask`` is 1 for known pixels and 0 for lost ones; images are
uint8 on disk, [-1, 1] inside networks; grayscale is exactly PIL's 'L'.
"""

__version__ = "0.1.0"
