"""Training: the shared loop, attacks, augmentations, regularisers, model selection and pruning surgery."""
