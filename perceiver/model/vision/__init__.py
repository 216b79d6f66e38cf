"""Vision models: ``perceiver.model.vision.image_classifier``."""
