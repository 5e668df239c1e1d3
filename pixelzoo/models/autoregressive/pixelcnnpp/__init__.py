"""The pixelcnnpp trunk (``trunk.py``) and its exact incremental stepper (``stepper.py``)."""
