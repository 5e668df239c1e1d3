"""De Fauw et al. 2019: the auxiliary decoders (``aux_decoders.py``) and the hierarchy of levels (``model.py``)."""
