"""AGAVE (Lucas & Verbeek 2018): the Gaussian VAE of the auxiliary image (``vae.py``) and the chain with the pixel decoder (``model.py``)."""
