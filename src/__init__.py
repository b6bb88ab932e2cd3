"""ConvNets on MNIST with Lightning, Hydra and TensorBoard."""
