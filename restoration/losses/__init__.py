"""Training losses: pure functions (or frozen modules), no config reads.

`adversarial` (GAN maths), `reconstruction` (pixel, chroma, SSIM), `hue_histogram` (a differentiable proxy of the
contest's color term), `perceptual` (frozen VGG-19 / timm features from a local weights file).
"""
