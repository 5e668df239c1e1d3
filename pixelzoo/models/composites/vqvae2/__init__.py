"""VQ-VAE-2 (Razavi et al. 2019): the hierarchical VQ autoencoder (``autoencoder.py``) and the chain of its codes with their priors (``model.py``)."""
