"""The gated_pixelcnn trunk (``trunk.py``) and its exact incremental stepper (``stepper.py``)."""
