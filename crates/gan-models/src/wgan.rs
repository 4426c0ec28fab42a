//! WGAN and WGAN-GP (placeholder, filled in by its owner).
