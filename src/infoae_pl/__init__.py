"""infoae-pl: the Information-Autoencoding family of latent-variable models as Lagrangians.

Losses are in nats, summed over data dimensions and averaged over the batch.
"""

__version__ = "0.1.0"
