"""Serve: the model. model/ holds the backends behind one interface; boot/ compiles once per
model/shape/compiler with a shared S3 cache and loads the engine."""
