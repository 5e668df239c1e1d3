"""The composites, each a short builder of a chain, one module or folder per paper's model:
Grayscale and Pyramid PixelCNN (``grayscale_pyramid.py``), VQ-VAE-2 (``vqvae2/``), AGAVE
(``agave/``) and De Fauw et al.'s hierarchies (``defauw/``); the code prior that VQ-VAE-2 and De
Fauw share is its own module (``code_prior.py``). Families never import each other. Importing
this package registers every composite."""

from . import grayscale_pyramid
from .agave import model as agave
from .defauw import model as defauw
from .vqvae2 import model as vqvae2

__all__ = ["agave", "defauw", "grayscale_pyramid", "vqvae2"]
